"""The lease a worker holds on a running job: claim it with one conditional UPDATE, renew it with
each heartbeat, end it with the attempt's outcome or hand the job back. Every write after the
claim is conditional on (worker, attempt, running), so a worker that lost its lease writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.core import workers
from app.core.db.clock import db_now
from app.core.db.tables import Job, JobAttempt, Tenant
from app.core.jobs import events
from app.core.jobs.outcome import Outcome


def claim(*, session: Session, job_id: str, worker_id: str, lease_seconds: float) -> Job | None:
    """One atomic conditional UPDATE: the job is ours if it was queued, or running on an expired lease,
    and its tenant runs fewer jobs than its ``max_running_jobs``. Which job a free worker claims is
    ``scheduling.claim_next``'s choice; this takes the one chosen.

    Returns the claimed job (attempt already incremented), or None: someone else has it, it is done,
    or it waits for one of its tenant's jobs to end (it stays queued; ``next_waiting`` wakes it).
    """
    if _at_running_quota(session, job_id):
        return None
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.cancel_requested.is_(False),
            or_(Job.state == "queued", and_(Job.state == "running", Job.lease_expires_at < db_now())),
        )
        .values(
            state="running",
            worker_id=worker_id,
            attempt=Job.attempt + 1,
            lease_expires_at=db_now(lease_seconds),
            started_at=db_now(),
        )
    ).rowcount
    if not claimed:
        return None
    job = session.scalar(select(Job).where(Job.id == job_id).execution_options(populate_existing=True))
    session.execute(insert(JobAttempt).values(job_id=job.id, attempt=job.attempt, tenant_id=job.tenant_id, worker_id=worker_id,
                                              started_at=db_now(), last_step=job.step))
    session.execute(update(Tenant).where(Tenant.id == job.tenant_id).values(last_started_at=db_now()))
    workers.running(session=session, worker_id=worker_id, job_id=job.id)
    events.state_changed(session, job_id=job.id, tenant_id=job.tenant_id, state="running", attempt=job.attempt)
    return job


def _at_running_quota(session: Session, job_id: str) -> bool:
    # The tenant's row is locked first (PostgreSQL), so two claims for one tenant count one after the other.
    quota = session.scalar(select(Tenant.max_running_jobs).join(Job, Job.tenant_id == Tenant.id).where(Job.id == job_id)
                           .with_for_update(of=Tenant))
    if quota is None:
        return False
    tenant_id = select(Job.tenant_id).where(Job.id == job_id).scalar_subquery()
    running = session.scalar(select(func.count()).where(Job.tenant_id == tenant_id, Job.state == "running", Job.id != job_id))
    return running >= quota


def next_waiting(*, session: Session, tenant_id: str) -> tuple[str, str] | None:
    """The tenant's next queued job (id, device), if a running-jobs quota may be holding it back: the
    worker that ends a job wakes it, so it does not wait for the reconciler to resend its message."""
    if session.scalar(select(Tenant.max_running_jobs).where(Tenant.id == tenant_id)) is None:
        return None
    return session.execute(select(Job.id, Job.device).where(Job.tenant_id == tenant_id, Job.state == "queued", Job.cancel_requested.is_(False))
                           .order_by(Job.priority.desc(), Job.created_at, Job.id).limit(1)).first()


def _owned(job_id: str, worker_id: str, attempt: int):
    return and_(Job.id == job_id, Job.worker_id == worker_id, Job.attempt == attempt, Job.state == "running")


@dataclass(frozen=True)
class Heartbeat:
    still_owner: bool
    cancel_requested: bool


# What a heartbeat may say of its attempt (see tables.JobAttempt).
ATTEMPT_REPORT = ("resumed_from_step", "checkpoint_step", "last_step", "peak_memory_bytes")


def heartbeat(
    *, session: Session, job_id: str, worker_id: str, attempt: int, lease_seconds: float,
    progress: dict[str, int], latest_metrics: dict[str, float] | None, report: dict[str, int | None] | None = None,
) -> Heartbeat:
    """Renews the lease and records progress; ``report`` records how the attempt is going (its step,
    its newest checkpoint, its peak memory), all only while the attempt still holds the lease."""
    values: dict[str, Any] = {"lease_expires_at": db_now(lease_seconds), **progress}
    if latest_metrics:
        values["latest_metrics"] = latest_metrics
    renewed = session.execute(update(Job).where(_owned(job_id, worker_id, attempt)).values(**values)).rowcount
    known = {k: v for k, v in (report or {}).items() if k in ATTEMPT_REPORT and v is not None}
    if renewed and known:
        session.execute(update(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.attempt == attempt).values(**known))
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return Heartbeat(still_owner=bool(renewed), cancel_requested=bool(cancel))


def _attempt_ended(session: Session, job_id: str, attempt: int, outcome: str) -> None:
    session.execute(update(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.attempt == attempt)
                    .values(outcome=outcome, ended_at=db_now()))


def finish(*, session: Session, job_id: str, worker_id: str, attempt: int, outcome: Outcome, log_line: str | None = None) -> bool:
    """Moves an owned running job to the outcome's terminal state, with the event saying so (and the
    log line that tells it, before the stream's end). False if the lease was lost meanwhile."""
    assert outcome.terminal, outcome
    values: dict[str, Any] = {"state": outcome.state, "finished_at": db_now(), "lease_expires_at": None}
    if outcome.error:
        values["error_type"], values["error_message"] = outcome.error
    if outcome.model:
        values["model_id"] = outcome.model.model_id
    if not session.execute(update(Job).where(_owned(job_id, worker_id, attempt)).values(**values)).rowcount:
        return False
    _attempt_ended(session, job_id, attempt, outcome.state)
    workers.running(session=session, worker_id=worker_id, job_id=None)
    _changed(session, job_id, outcome.state, attempt, log_line)
    return True


def _changed(session: Session, job_id: str, state: str, attempt: int, log_line: str | None) -> None:
    tenant_id = session.scalar(select(Job.tenant_id).where(Job.id == job_id))
    events.state_changed(session, job_id=job_id, tenant_id=tenant_id, state=state, attempt=attempt,
                         more=[("log", {"line": log_line})] if log_line else [])


def release(*, session: Session, job_id: str, worker_id: str, attempt: int, log_lines: dict[str, str] | None = None) -> str | None:
    """Hands an owned running job back at once (graceful stop), without waiting for expiry: to the
    queue, or to ``cancelled`` if a cancel was asked for meanwhile (claims skip such a job, so in the
    queue it would wait for ever). Returns the state it went to; None if the lease was lost."""
    owned = _owned(job_id, worker_id, attempt)
    workers.running(session=session, worker_id=worker_id, job_id=None)
    if session.execute(update(Job).where(owned, Job.cancel_requested.is_(True))
                       .values(state="cancelled", finished_at=db_now(), lease_expires_at=None)).rowcount:
        _attempt_ended(session, job_id, attempt, "cancelled")
        _changed(session, job_id, "cancelled", attempt, (log_lines or {}).get("cancelled"))
        return "cancelled"
    if session.execute(update(Job).where(owned).values(
            state="queued", worker_id=None, lease_expires_at=None, enqueued_at=db_now(), handbacks=Job.handbacks + 1)).rowcount:
        _attempt_ended(session, job_id, attempt, "handed_back")
        _changed(session, job_id, "queued", attempt, (log_lines or {}).get("queued"))
        return "queued"
    return None
