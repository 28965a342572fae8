"""A worker's webhook sender: a thread that claims deliveries due from the outbox and POSTs each,
signed in the Standard Webhooks form (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``,
by the standardwebhooks library), then records the try. Never from an API request: the outbox row
is written with the transition, and whichever worker is up sends it."""

from __future__ import annotations

import logging
import threading

import httpx
import orjson
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook as Signer

from app.core.db.tables import WebhookDelivery
from app.core.db.types import utcnow
from app.core.settings import Settings
from app.core.webhooks import addresses, outbox

log = logging.getLogger("kiln.webhooks")
BATCH = 20


class WebhookSender:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings):
        self.sessions, self.settings = sessions, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiln-webhooks", daemon=True)
        # Redirects are not followed: a hook's answer must come from the URL that was checked.
        self.http = httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False,
                                 headers={"User-Agent": "Kiln-Webhooks/0.1", "Content-Type": "application/json"})

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.webhook_timeout_seconds + 5)
        self.http.close()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.webhook_poll_seconds):
            try:
                while self.send_due() == BATCH and not self._stop.is_set():
                    pass
            except Exception:  # noqa: BLE001 - a database restarting: the next round tries again
                log.warning("webhook sender round failed", exc_info=True)

    def send_due(self) -> int:
        """Sends the deliveries due now; how many it claimed."""
        with self.sessions() as session:
            batch = outbox.claim_due(session, limit=BATCH, hold_seconds=self.settings.webhook_timeout_seconds + 5)
            for delivery, url, secret in batch:
                self._try(session, delivery, url, secret)
        return len(batch)

    def _try(self, session: Session, delivery: WebhookDelivery, url: str, secret: str) -> None:
        def failed(error: str, status_code: int | None = None, permanent: bool = False) -> None:
            status = outbox.failed_try(session, delivery=delivery, error=error, status_code=status_code, delays=self.settings.webhook_retry_delays,
                                       max_age_seconds=self.settings.webhook_max_age_seconds, permanent=permanent)
            log.info("webhook %s try %d to %s failed (%s): %s", delivery.id, delivery.attempts, url, error, status)

        try:
            addresses.check(url, allow_private=self.settings.webhook_allow_private)
        except addresses.RefusedAddress as exc:
            return failed(f"refused: {exc}", permanent=True)
        body = orjson.dumps(delivery.payload)
        sent_at = utcnow()
        headers = {"webhook-id": delivery.id, "webhook-timestamp": str(int(sent_at.timestamp())),
                   "webhook-signature": Signer(secret).sign(delivery.id, sent_at, body)}
        try:
            response = self.http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return failed(f"{type(exc).__name__}: {exc}"[:500])
        if response.is_success:
            outbox.delivered(session, delivery_id=delivery.id, status_code=response.status_code)
            log.info("webhook %s delivered to %s on try %d", delivery.id, url, delivery.attempts)
        else:
            failed(f"HTTP {response.status_code}", response.status_code)
