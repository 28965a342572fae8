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
import time
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.core import orphans
from app.core.artifacts.store import ArtifactStore
from app.core.db.clock import db_now
from app.core.db.tables import Job, JobAttempt
from app.core.jobs import events
from app.core.queue import Send, queued_job_ids
from app.core.settings import Settings

log = logging.getLogger("kiln.reconciler")


BATCH = 500  # jobs repaired per transaction: bounded statements, short write locks
MAX_BATCHES = 1000  # per pass and kind of repair; the next pass goes on where this one stopped
LOCK_TIMEOUT = "5s"  # PostgreSQL: a repair that would wait longer on a row lock gives up until the next pass
SAME_PLACE_STEPS = 10  # two lost attempts this close (or within a tenth of what they trained) died "at the same place"


@dataclass(frozen=True)
class Repairs:
    requeued: list[str]  # running on an expired lease -> queued (need a message)
    failed: list[str]  # expired lease and no attempts left
    resent: list[str]  # queued, message gone (need a message)
    cancelled: list[str] = field(default_factory=list)  # expired or handed back while a cancel was asked for

    @property
    def to_enqueue(self) -> list[str]:
        return self.requeued + self.resent


def repair_expired_leases(*, session: Session, limit: int = BATCH) -> tuple[list[str], list[str], list[str], bool]:
    """Running jobs whose worker stopped renewing (in the database's time): cancelled if a cancel
    was asked for, failed once attempts are spent, else back to queued. Returns those lists and
    whether more may remain past ``limit``.

    Each change is conditional on the state read, so several reconcilers at once are harmless.
    """
    expired = session.execute(
        select(Job.id, Job.tenant_id, Job.attempt, Job.handbacks, Job.max_attempts, Job.cancel_requested)
        .where(Job.state == "running", Job.lease_expires_at < db_now()).order_by(Job.id).limit(limit)
    ).all()
    requeued, failed, cancelled = [], [], []
    for job_id, tenant_id, attempt, handbacks, max_attempts, cancel_requested in expired:
        still_expired = and_(Job.id == job_id, Job.state == "running", Job.attempt == attempt, Job.lease_expires_at < db_now())
        repeat = _dying_at_the_same_place(session, job_id, attempt)
        if cancel_requested:
            outcome, values = cancelled, {"state": "cancelled", "finished_at": db_now(), "lease_expires_at": None}
        elif attempt - handbacks >= max_attempts:
            outcome, values = failed, {
                "state": "failed", "finished_at": db_now(), "lease_expires_at": None, "error_type": "attempts_exhausted",
                "error_message": f"its worker was lost {attempt - handbacks} times (max_attempts={max_attempts})",
            }
        elif repeat is not None:
            outcome, values = failed, {
                "state": "failed", "finished_at": db_now(), "lease_expires_at": None, "error_type": "worker_lost_repeatedly",
                "error_message": repeat,
            }
        else:
            outcome, values = requeued, {"state": "queued", "worker_id": None, "lease_expires_at": None, "enqueued_at": db_now()}
        if session.execute(update(Job).where(still_expired).values(**values)).rowcount:
            session.execute(update(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.attempt == attempt)
                            .values(outcome="lost", ended_at=db_now()))
            events.state_changed(session, job_id=job_id, tenant_id=tenant_id, state=values["state"], attempt=attempt)
            outcome.append(job_id)
    return requeued, failed, cancelled, len(expired) == limit


def _dying_at_the_same_place(session: Session, job_id: str, attempt: int) -> str | None:
    """Why the job should fail rather than take down another worker, or None: this attempt and the
    one before were both lost after resuming from the same checkpoint, neither writing a newer one,
    both having trained to about the same step (an out-of-memory kill at the same step looks exactly
    like that; workers killed at random moments do not)."""
    last_two = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.attempt <= attempt)
                               .order_by(JobAttempt.attempt.desc()).limit(2)).all()
    if len(last_two) < 2:
        return None
    this, before = last_two
    if this.attempt != attempt or before.outcome != "lost" or this.checkpoint_step is not None or before.checkpoint_step is not None:
        return None
    start = this.resumed_from_step or 0
    if (before.resumed_from_step or 0) != start or min(this.last_step, before.last_step) <= start:
        return None
    trained = max(this.last_step, before.last_step) - start
    if abs(this.last_step - before.last_step) > max(SAME_PLACE_STEPS, trained // 10):
        return None
    peak = max(a.peak_memory_bytes or 0 for a in last_two)
    memory = f" (peak memory {peak / 1e9:.1f} GB)" if peak else ""
    return (f"its worker was lost twice in a row after resuming from step {this.resumed_from_step or 0}, before the next checkpoint, "
            f"last seen at step {max(a.last_step for a in last_two)}{memory}: it is failed rather than take down more workers")


def queued_without_message(
    *, session: Session, grace_seconds: float, in_broker: set[str] | None, after: str = "", limit: int = BATCH,
) -> tuple[list[str], str | None]:
    """Queued jobs whose wake-up message is gone: not in the broker's queue (when the broker can be
    read), and last sent more than ``grace_seconds`` ago (in the database's time). Marks them as
    sent now. Looks at ``limit`` candidates with ids after ``after``; returns the lost ones and the
    id to go on after, or None when there are no more."""
    candidates = session.scalars(
        select(Job.id).where(
            Job.state == "queued", Job.cancel_requested.is_(False), Job.id > after,
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < db_now(-grace_seconds)),
        ).order_by(Job.id).limit(limit)
    ).all()
    lost = [job_id for job_id in candidates if in_broker is None or job_id not in in_broker]
    if lost:
        session.execute(update(Job).where(Job.id.in_(lost), Job.state == "queued").values(enqueued_at=db_now()))
    return lost, (candidates[-1] if len(candidates) == limit else None)


def _bounded(session: Session) -> Session:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    return session


def reconcile_once(settings: Settings, sessions: sessionmaker[Session], send: Send) -> Repairs:
    """One pass, in batches of ``BATCH`` jobs, each its own transaction; messages go out after each commit."""
    try:
        in_broker = queued_job_ids(settings)
    except Exception:  # noqa: BLE001 - an unreadable broker: fall back to the grace period alone
        log.warning("could not read the broker's queue", exc_info=True)
        in_broker = None
    requeued, failed, cancelled, resent = [], [], [], []
    for _ in range(MAX_BATCHES):
        with sessions() as session:
            r, f, c, more = repair_expired_leases(session=_bounded(session))
            session.commit()
        _send_all(sessions, send, r)
        requeued += r
        failed += f
        cancelled += c
        if not more:
            break
    after: str | None = ""
    for _ in range(MAX_BATCHES):
        with sessions() as session:
            lost, after = queued_without_message(session=_bounded(session), grace_seconds=settings.requeue_grace_seconds,
                                                 in_broker=in_broker, after=after)
            session.commit()
        _send_all(sessions, send, lost)
        resent += lost
        if after is None:
            break
    if requeued or failed or cancelled or resent:
        log.info("reconciled: requeued %d, failed %d, cancelled %d, re-sent %d", len(requeued), len(failed), len(cancelled), len(resent))
    return Repairs(requeued=requeued, failed=failed, resent=resent, cancelled=cancelled)


def _send_all(sessions: sessionmaker[Session], send: Send, job_ids: list[str]) -> None:
    """The messages of jobs just made queued, each to its device's queue."""
    if not job_ids:
        return
    with sessions() as session:
        devices = dict(session.execute(select(Job.id, Job.device).where(Job.id.in_(job_ids))).all())
    for job_id in job_ids:
        send(job_id, devices.get(job_id, "any"))


class Reconciler:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], send: Send, store: ArtifactStore | None = None):
        self.settings = settings
        self.sessions = sessions
        self.send = send
        self.store = store  # given: orphaned artifacts are collected too, every KILN_ORPHAN_SWEEP_SECONDS
        self._next_sweep = time.monotonic() + settings.orphan_sweep_seconds
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
            if self.store is not None and time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.settings.orphan_sweep_seconds
                try:
                    orphans.sweep(sessions=self.sessions, store=self.store, grace_seconds=self.settings.orphan_grace_seconds)
                except Exception:  # noqa: BLE001 - the next sweep tries again
                    log.warning("orphan sweep failed", exc_info=True)
