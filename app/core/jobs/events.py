"""A job's events, the record behind its live stream (``GET /v1/jobs/{id}/events``): ``state``
(every transition, with the attempt), ``progress``, ``metric`` (the points as written), ``log``
(lines) and a final ``end``. Written in the transaction that makes them true; numbered per job
under the job row's lock, so they commit in order and a client resuming after seq n misses
nothing and sees nothing twice, whichever API process it reaches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.db.clock import db_now
from app.core.db.tables import Job, JobEvent
from app.core.jobs import job_stats
from app.core.jobs.outcome import TERMINAL_STATES
from app.core.webhooks import outbox

KINDS = ("state", "progress", "metric", "log", "end")


def append(session: Session, *, job_id: str, tenant_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Adds events (kind, data) in order. Takes the job row's lock first (a no-op where the
    transaction already updated the row), so no other writer can number events meanwhile."""
    if not events:
        return
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
    last = session.scalar(select(func.coalesce(func.max(JobEvent.seq), 0)).where(JobEvent.job_id == job_id))
    session.add_all(JobEvent(job_id=job_id, tenant_id=tenant_id, seq=last + i, kind=kind, data=data, created_at=db_now())
                    for i, (kind, data) in enumerate(events, start=1))
    session.flush()


def state_changed(session: Session, *, job_id: str, tenant_id: str, state: str, attempt: int,
                  more: list[tuple[str, dict[str, Any]]] = ()) -> None:
    """A transition, then ``more`` (e.g. the log line that says why), then ``end`` if it is final;
    and, in the same transaction, what it adds to the service's stats and the webhooks' outbox
    (every transition passes here)."""
    events = [("state", {"state": state, "attempt": attempt}), *more]
    if state in TERMINAL_STATES:
        events.append(("end", {"state": state}))
    append(session, job_id=job_id, tenant_id=tenant_id, events=events)
    job_stats.transition(session, job_id=job_id, state=state, attempt=attempt)
    if state == "running" or state in TERMINAL_STATES:
        outbox.on_transition(session, job_id=job_id, tenant_id=tenant_id, state=state)


def after(session: Session, *, tenant_id: str, job_id: str, seq: int, limit: int, kinds: tuple[str, ...] = KINDS) -> list[JobEvent]:
    """The job's events after ``seq``, in order, at most ``limit``."""
    stmt = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.tenant_id == tenant_id, JobEvent.seq > seq)
    if kinds != KINDS:
        stmt = stmt.where(JobEvent.kind.in_(kinds))
    return list(session.scalars(stmt.order_by(JobEvent.seq).limit(limit)))
