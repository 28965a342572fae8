"""What a job's transitions add to the service-wide stats on ``/metrics``: its queue wait when a
worker first starts it, and when it ends, its outcome and its last attempt's running time."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import service_stats
from app.core.db.tables import Job
from app.core.jobs.outcome import TERMINAL_STATES


def transition(session: Session, *, job_id: str, state: str, attempt: int) -> None:
    """Called in the transaction of every transition, after the job's row says so."""
    if state == "running" and attempt == 1:
        job = session.execute(select(Job.device, Job.created_at, Job.started_at).where(Job.id == job_id)).one()
        service_stats.observe(session, service_stats.QUEUE_WAIT, {"device": job.device}, (job.started_at - job.created_at).total_seconds())
    elif state in TERMINAL_STATES:
        job = session.execute(select(Job.device, Job.started_at, Job.finished_at).where(Job.id == job_id)).one()
        labels = {"device": job.device, "state": state}
        service_stats.count(session, service_stats.FINISHED, labels)
        if job.started_at is not None and job.finished_at is not None:  # a job cancelled in the queue never ran
            service_stats.observe(session, service_stats.DURATION, labels, (job.finished_at - job.started_at).total_seconds())
