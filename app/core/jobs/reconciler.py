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
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.db.tables import Job
from app.core.db.types import utcnow
from app.core.queue import Send, queued_job_ids
from app.core.settings import Settings

log = logging.getLogger("kiln.reconciler")


@dataclass(frozen=True)
class Repairs:
    requeued: list[str]  # running on an expired lease -> queued (need a message)
    failed: list[str]  # expired lease and no attempts left
    resent: list[str]  # queued, message gone (need a message)

    @property
    def to_enqueue(self) -> list[str]:
        return self.requeued + self.resent


def repair_expired_leases(*, session: Session, now: datetime) -> tuple[list[str], list[str]]:
    """Running jobs whose worker stopped renewing: back to queued, or failed once attempts are spent.

    Each change is conditional on the state read, so several reconcilers at once are harmless.
    """
    expired = session.execute(
        select(Job.id, Job.attempt, Job.handbacks, Job.max_attempts).where(Job.state == "running", Job.lease_expires_at < now)
    ).all()
    requeued, failed = [], []
    for job_id, attempt, handbacks, max_attempts in expired:
        still_expired = and_(Job.id == job_id, Job.state == "running", Job.attempt == attempt, Job.lease_expires_at < now)
        if attempt - handbacks >= max_attempts:
            done = session.execute(update(Job).where(still_expired).values(
                state="failed", finished_at=now, lease_expires_at=None, error_type="attempts_exhausted",
                error_message=f"its worker was lost {attempt - handbacks} times (max_attempts={max_attempts})",
            )).rowcount
            if done:
                failed.append(job_id)
        elif session.execute(update(Job).where(still_expired).values(state="queued", worker_id=None, lease_expires_at=None, enqueued_at=now)).rowcount:
            requeued.append(job_id)
    return requeued, failed


def queued_without_message(*, session: Session, now: datetime, grace_seconds: float, in_broker: set[str] | None) -> list[str]:
    """Queued jobs whose wake-up message is gone: not in the broker's queue (when the broker can be
    read), and last sent more than ``grace_seconds`` ago. Marks them as sent now."""
    cutoff = now - timedelta(seconds=grace_seconds)
    candidates = session.scalars(
        select(Job.id).where(Job.state == "queued", Job.cancel_requested.is_(False), or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff))
    ).all()
    lost = [job_id for job_id in candidates if in_broker is None or job_id not in in_broker]
    if lost:
        session.execute(update(Job).where(Job.id.in_(lost), Job.state == "queued").values(enqueued_at=now))
    return lost


def reconcile_once(settings: Settings, sessions: sessionmaker[Session], send: Send) -> Repairs:
    try:
        in_broker = queued_job_ids(settings)
    except Exception:  # noqa: BLE001 - an unreadable broker: fall back to the grace period alone
        log.warning("could not read the broker's queue", exc_info=True)
        in_broker = None
    with sessions() as session:
        now = utcnow()
        requeued, failed = repair_expired_leases(session=session, now=now)
        resent = queued_without_message(
            session=session, now=now, grace_seconds=settings.requeue_grace_seconds, in_broker=in_broker
        )
        session.commit()
    repairs = Repairs(requeued=requeued, failed=failed, resent=resent)
    for job_id in repairs.to_enqueue:  # after commit, as everywhere
        send(job_id)
    if requeued or failed or resent:
        log.info("reconciled: requeued %s, failed %s, re-sent %s", requeued, failed, resent)
    return repairs


class Reconciler:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], send: Send):
        self.settings = settings
        self.sessions = sessions
        self.send = send
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
                reconcile_once(self.settings, self.sessions, self.send)
            except Exception:  # noqa: BLE001 - the next pass tries again (database restarting, broker down)
                log.warning("reconcile pass failed", exc_info=True)
