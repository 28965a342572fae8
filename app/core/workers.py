"""The workers alive, what device each serves and what it runs: each worker writes its row when it
starts, every few seconds while it lives (``KILN_WORKER_BEAT_SECONDS``), at each claim and end of
a job, and deletes it when it stops. Read by the queue's overview, a queued job's ``waiting_for``,
and a CPU worker deciding whether to leave a job for "any" device to an idle GPU."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.core.db.clock import db_now
from app.core.db.tables import Job, Worker
from app.core.db.upsert import insert_for


def beat(*, session: Session, worker_id: str, device: str) -> None:
    """Says this worker is alive (its row made on the first beat)."""
    stmt = insert_for(session)(Worker).values(id=worker_id, device=device, started_at=db_now(), last_seen_at=db_now())
    session.execute(stmt.on_conflict_do_update(index_elements=[Worker.id], set_={"last_seen_at": db_now(), "device": device}))


def running(*, session: Session, worker_id: str, job_id: str | None) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(job_id=job_id, last_seen_at=db_now()))


def gone(*, session: Session, worker_id: str) -> None:
    session.execute(delete(Worker).where(Worker.id == worker_id))


def alive(*, session: Session, alive_seconds: float) -> dict[str, dict[str, int]]:
    """Per device: workers seen within ``alive_seconds``, and how many of them run a job."""
    rows = session.execute(
        select(Worker.device, func.count(), func.count(Worker.job_id)).where(Worker.last_seen_at > db_now(-alive_seconds)).group_by(Worker.device)
    ).all()
    return {device: {"workers": n, "busy": busy} for device, n, busy in rows}


def idle(*, session: Session, device: str, alive_seconds: float) -> bool:
    """Whether a live worker of ``device`` runs nothing now."""
    return session.scalar(
        select(func.count()).where(Worker.device == device, Worker.job_id.is_(None), Worker.last_seen_at > db_now(-alive_seconds))
    ) > 0


def running_by_device(*, session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Worker.device, func.count()).join(Job, Job.id == Worker.job_id).where(Job.state == "running").group_by(Worker.device)
    ).all()
    return dict(rows)
