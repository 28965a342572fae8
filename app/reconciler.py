"""The reconciler: a periodic pass that repairs what crashes leave behind.

- running jobs whose lease expired go back to queued (or fail once their attempts are spent);
- queued jobs whose wake-up message is gone get a new one (a crash between commit and send,
  a broker that lost its data, a worker killed after taking a message).

It runs as a thread inside every `kiln api` and `kiln worker` process: no extra process to
deploy. Several at once are harmless: every change is a conditional UPDATE, and a duplicate
message only makes a worker find the job already claimed.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from app.db.types import utcnow
from app.queue import enqueue_training, queued_job_ids
from app.services import jobs as job_service
from app.settings import Settings

log = logging.getLogger("kiln.reconciler")


def reconcile_once(settings: Settings, sessions: sessionmaker[Session]) -> job_service.Repairs:
    try:
        in_broker = queued_job_ids(settings)
    except Exception:  # noqa: BLE001 - an unreadable broker: fall back to the grace period alone
        log.warning("could not read the broker's queue", exc_info=True)
        in_broker = None
    with sessions() as session:
        now = utcnow()
        requeued, failed = job_service.repair_expired_leases(session=session, now=now)
        resent = job_service.queued_without_message(
            session=session, now=now, grace_seconds=settings.requeue_grace_seconds, in_broker=in_broker
        )
        session.commit()
    repairs = job_service.Repairs(requeued=requeued, failed=failed, resent=resent)
    for job_id in repairs.to_enqueue:  # after commit, as everywhere
        enqueue_training(settings, job_id)
    if requeued or failed or resent:
        log.info("reconciled: requeued %s, failed %s, re-sent %s", requeued, failed, resent)
    return repairs


class Reconciler:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]):
        self.settings = settings
        self.sessions = sessions
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiln-reconciler", daemon=True)

    def start(self) -> "Reconciler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.reconcile_seconds):
            try:
                reconcile_once(self.settings, self.sessions)
            except Exception:  # noqa: BLE001 - the next pass tries again (database restarting, broker down)
                log.warning("reconcile pass failed", exc_info=True)
