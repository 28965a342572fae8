"""How long a job has run and how long it has left, as a person reads a progress bar."""

from __future__ import annotations

from datetime import datetime

from app.core.db.tables import Job


def elapsed_seconds(job: Job, now: datetime) -> float | None:
    """Since it first started, to its end (or now); None before it starts."""
    if job.started_at is None:
        return None
    end = job.finished_at or now
    return round(max(0.0, (end - job.started_at).total_seconds()), 1)


def eta_seconds(job: Job) -> float | None:
    """The steps left at the running attempt's recent pace; 0 once succeeded; None where unknown
    (queued, before its worker has seen a minute's pace, or ended otherwise)."""
    if job.state == "succeeded":
        return 0.0
    if job.state != "running" or not job.steps_per_second or not job.total_steps:
        return None
    return round(max(0, job.total_steps - job.step) / job.steps_per_second, 1)
