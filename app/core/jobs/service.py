"""Jobs as the API sees them: submit (after the checks in ``validation``), tenant-scoped reads,
and cancel. Services never commit; the caller owns the transaction and sends the wake-up after it.

States: queued -> running -> succeeded | failed | cancelled; running -> queued (lease lost or
handed back); queued -> cancelled. The database is the source of truth; messages only wake workers.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

import models
from app.core import quotas, scoped, trained_models
from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.datasets import service as dataset_service
from app.core.db.clock import db_now
from app.core.db.tables import Dataset, Job, JobAttempt, JobLabel
from app.core.db.types import utcnow
from app.core.errors import Conflict, InvalidInput, detail
from app.core.ids import new_id
from app.core.jobs import events, log, scheduling
from app.core.jobs.outcome import TERMINAL_STATES
from app.core.jobs.spec import LABEL_KEY, JobSpec
from app.core.jobs.validation import JobLimits, validate_spec
from app.core.paging import Page, newest_page


def create(*, session: Session, tenant_id: str, spec: JobSpec, max_attempts: int, limits: JobLimits | None = None) -> Job:
    quotas.check_can_queue(session=session, tenant_id=tenant_id, priority=spec.priority)
    info = dataset_service.resolve(session=session, tenant_id=tenant_id, ref=spec.data.dataset)
    source = None
    if spec.model.init_from is not None:
        source = trained_models.find(session=session, tenant_id=tenant_id, model_id=spec.model.init_from.model_id)
        if source is None:
            raise InvalidInput(
                f"unknown model {spec.model.init_from.model_id!r} in init_from",
                [detail(["body", "model", "init_from", "model_id"], "not one of your models")],
            )
    checked = validate_spec(spec, info, source, limits or JobLimits())
    stored_spec = spec.model_dump(mode="json")
    stored_spec["model"]["params"] = checked.params  # what will run, defaults included
    stored_spec["training"]["optimizer"] = spec.training.optimizer_for(models.get(spec.model.architecture).task).model_dump(mode="json")
    stored_spec["name"] = spec.name or default_name(session=session, tenant_id=tenant_id, spec=spec)
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        name=stored_spec["name"],
        state="queued",
        spec=stored_spec,
        dataset_ref=spec.data.dataset,
        max_attempts=max_attempts,
        priority=spec.priority,
        device=spec.resources.device,
        epochs=spec.training.epochs,
        estimate=checked.estimate,
        latest_metrics={},
        created_at=utcnow(),
        enqueued_at=db_now(),  # compared with the database's time by the reconciler
    )
    session.add(job)
    session.flush()
    session.add_all(JobLabel(job_id=job.id, tenant_id=tenant_id, key=key, value=value) for key, value in spec.labels.items())
    events.state_changed(session, job_id=job.id, tenant_id=tenant_id, state="queued", attempt=0)
    return job


def default_name(*, session: Session, tenant_id: str, spec: JobSpec) -> str:
    """A name a person can tell apart in a list: architecture, dataset, 4 random hex digits (lenet5-digits-3f2a)."""
    ref = spec.data.dataset
    dataset = ref.removeprefix("builtin:") if ref.startswith("builtin:") else (
        session.scalar(scoped.owned(Dataset, tenant_id).where(Dataset.id == ref).with_only_columns(Dataset.name)) or ref)
    slug = "-".join(re.findall(r"[a-z0-9]+", f"{spec.model.architecture} {dataset}".lower()))[:60]
    return f"{slug}-{secrets.token_hex(2)}"


def label_filters(raw: list[str], max_labels: int) -> list[tuple[str, str]]:
    """``key:value`` query values as pairs; a 422 naming the first malformed one."""
    if len(raw) > max_labels:
        raise InvalidInput(f"{len(raw)} label filters, over the limit of {max_labels} (KILN_MAX_QUERY_LIST)",
                           [detail(["query", "label"], "too many")])
    out = []
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not re.match(LABEL_KEY, key):
            raise InvalidInput(f"label filter {item[:100]!r} is not key:value (e.g. label=team:vision)", [detail(["query", "label"], "not key:value")])
        out.append((key, value))
    return out


def find(*, session: Session, tenant_id: str, job_id: str, kind: str = "train") -> Job | None:
    return scoped.find(session, Job, tenant_id, job_id, kind=kind)


def get(*, session: Session, tenant_id: str, job_id: str, kind: str = "train") -> Job:
    return scoped.get(session, Job, tenant_id, job_id, "inference job" if kind == "inference" else "job", kind=kind)


def list_jobs(*, session: Session, tenant_id: str, state: str | None, limit: int, cursor: str | None, kind: str = "train",
              labels: list[tuple[str, str]] = ()) -> Page:
    stmt = scoped.owned(Job, tenant_id).where(Job.kind == kind)
    if state:
        stmt = stmt.where(Job.state == state)
    for key, value in labels:  # every label must match
        stmt = stmt.where(exists().where(JobLabel.job_id == Job.id, JobLabel.tenant_id == tenant_id, JobLabel.key == key,
                                         JobLabel.value == value))
    return newest_page(session, stmt, Job, limit=limit, cursor=cursor)


def place_in_queue(*, session: Session, job: Job, alive_seconds: float) -> tuple[int, str] | None:
    """(position, what it waits for) of a queued job; None for any other."""
    if job.state != "queued":
        return None
    position = scheduling.queue_position(session=session, job=job)
    if position is None:  # no longer queued by the time the queue was read
        return None
    return position, scheduling.waiting_for(session=session, job=job, alive_seconds=alive_seconds)


def delete(*, session: Session, store: ArtifactStore, tenant_id: str, job_id: str, kind: str = "train", with_model: bool = False) -> None:
    """A finished job, its metrics, attempts and files (checkpoints, log, results); its model too
    if asked (and no other job needs it). A 409 while it is queued or running."""
    job = get(session=session, tenant_id=tenant_id, job_id=job_id, kind=kind)
    if job.state not in TERMINAL_STATES:
        raise Conflict(f"job {job_id!r} is {job.state}; only a finished job can be deleted: cancel it first")
    if with_model and job.model_id and trained_models.find(session=session, tenant_id=tenant_id, model_id=job.model_id):
        trained_models.delete(session=session, store=store, tenant_id=tenant_id, model_id=job.model_id)
    session.delete(job)  # its metric points and attempts go with it (ON DELETE CASCADE)
    session.flush()
    store.delete(layout.job_prefix(job.id))


def request_cancel(*, session: Session, store: ArtifactStore, tenant_id: str, job_id: str, kind: str = "train") -> Job:
    """Cancels a queued job now; asks a running one to stop (its worker does, at its next heartbeat).
    Either way the job's log says so, from the commit of this transaction."""
    job = get(session=session, tenant_id=tenant_id, job_id=job_id, kind=kind)
    if job.state in TERMINAL_STATES:
        raise Conflict(f"job {job_id!r} is already {job.state}")
    # Conditional on the state we read, so a worker claiming the job at this instant cannot be overwritten.
    cancelled_while_queued = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == "queued")
        .values(state="cancelled", cancel_requested=True, finished_at=db_now(), lease_expires_at=None)
    ).rowcount
    if cancelled_while_queued:
        events.state_changed(session, job_id=job.id, tenant_id=tenant_id, state="cancelled", attempt=job.attempt)
        why = "before any attempt started" if job.attempt == 0 else f"after attempt {job.attempt} handed it back"
        log.note(session, store, job_id=job.id, tenant_id=tenant_id, text=f"cancelled while queued, {why}")
    elif session.execute(update(Job).where(Job.id == job.id, Job.state == "running", Job.cancel_requested.is_(False))
                         .values(cancel_requested=True)).rowcount:
        # Not a transition yet (the worker stops at its next heartbeat), but a follower should see it was asked for.
        events.append(session, job_id=job.id, tenant_id=tenant_id,
                      events=[("state", {"state": "running", "attempt": job.attempt, "cancel_requested": True})])
        log.note(session, store, job_id=job.id, tenant_id=tenant_id,
                 text=f"cancel asked for; attempt {job.attempt} stops at its worker's next heartbeat")
    session.refresh(job)
    return job


def read_log(*, session: Session, store: ArtifactStore, tenant_id: str, job_id: str, kind: str = "train") -> str:
    get(session=session, tenant_id=tenant_id, job_id=job_id, kind=kind)  # 404 for other tenants' jobs
    return log.read(store, job_id)


def attempts(*, session: Session, tenant_id: str, job_id: str) -> list[JobAttempt]:
    """Every attempt at the job, oldest first."""
    get(session=session, tenant_id=tenant_id, job_id=job_id)
    return list(session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.tenant_id == tenant_id)
                                .order_by(JobAttempt.attempt)))
