"""Training jobs: submit-time validation, the state machine, tenant-scoped reads, and the lease
a worker holds while it trains.

States: queued -> running -> succeeded | failed | cancelled; running -> queued (lease lost);
queued -> cancelled. The database is the source of truth; broker messages only wake workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

import models
from app import preprocessing
from app.datasets_catalog import DatasetInfo
from app.db.tables import Job, TrainedModel
from app.db.types import utcnow
from app.errors import Conflict, InvalidInput, NotFound, detail
from app.ids import new_id
from app.jobspec import JobSpec
from app.services import architectures
from app.services import datasets as dataset_service
from app.services.paging import Page, newest_first, page_of

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def validate_spec(spec: JobSpec, info: DatasetInfo, source: TrainedModel | None = None) -> dict[str, Any]:
    """Checks that need the registry, the dataset and (transfer learning) the source model.
    Returns the params with defaults filled."""
    if source is not None and source.architecture != spec.model.architecture:
        message = f"incompatible init_from: model {source.id} is a {source.architecture}, not a {spec.model.architecture}"
        raise InvalidInput(message, [detail(["body", "model", "init_from", "model_id"], message)])
    raw_params = spec.model.params if (source is None or spec.model.params) else source.params
    params = architectures.validate_params(spec.model.architecture, raw_params, ["body", "model", "params"])
    _check_dataset_fits(spec, info)
    arch = models.get(spec.model.architecture)
    try:
        takes = arch.input_spec(params)
        if info.kind == "sequence" and takes.kind == "image":
            raise preprocessing.IncompatibleInput(f"{arch.name} takes images, dataset {info.ref!r} holds sequences")
        pre = preprocessing.plan(
            sample_shape=info.sample_shape, value_max=info.value_max, input_kind=takes.kind,
            input_size=takes.size, input_channels=takes.channels, tokens=info.tokens, vocab_size=info.vocab_size,
        )
        arch.check(params, pre.input_shape, max(info.num_classes, 1), vocab_size=pre.vocab_size)
    except (preprocessing.IncompatibleInput, models.ArchitectureError) as exc:
        raise InvalidInput(str(exc), [detail(["body", "model"], str(exc))]) from None
    filled = dataclasses.asdict(params)
    if arch.task != "classify":
        _check_generative_options(spec, arch.name)
    augmentation = spec.training.augmentation
    if augmentation and (augmentation.random_crop_padding or augmentation.horizontal_flip) and (info.kind, takes.kind) != ("image", "image"):
        what = f"holds {info.kind} samples" if info.kind != "image" else f"is read as sequences by {arch.name}"
        raise InvalidInput(
            f"image augmentation asked for, but dataset {info.ref!r} {what}",
            [detail(["body", "training", "augmentation"], "only for image datasets read as images")],
        )
    if source is not None:
        _check_transfer(spec, source, filled, pre.input_shape, info.num_classes, arch.top_level_modules(params, pre.input_shape, info.num_classes, vocab_size=pre.vocab_size))
    return filled


def _check_generative_options(spec: JobSpec, name: str) -> None:
    """GAN and RBM loops have their own losses and update rules: options they would ignore are refused."""
    t = spec.training
    ignored = [
        (["training", "l1"], t.l1 > 0),
        (["training", "lr_schedule"], t.lr_schedule.name != "constant" or t.lr_schedule.warmup_epochs > 0),
        (["training", "early_stopping"], t.early_stopping is not None),
        (["training", "augmentation"], t.augmentation is not None),
        (["training", "loss"], t.loss != "cross_entropy"),
        (["model", "init_from"], spec.model.init_from is not None),
    ]
    if name == "rbm":
        ignored += [(["training", "optimizer"], t.optimizer.name != "sgd"), (["training", "label_smoothing"], t.label_smoothing > 0),
                    (["training", "grad_clip_norm"], t.grad_clip_norm is not None)]
    if name == "gan":
        ignored.append((["training", "optimizer"], t.optimizer.name not in ("adam", "adamw")))
    offending = [["body", *loc] for loc, bad in ignored if bad]
    if offending:
        fields = ", ".join(".".join(map(str, loc[1:])) for loc in offending)
        raise InvalidInput(
            f"{name} trains with its own loop ({'CD-k with SGD and momentum' if name == 'rbm' else 'adversarial, Adam'}); not supported: {fields}",
            [detail(loc, f"not supported for {name}") for loc in offending],
        )


def _check_transfer(spec: JobSpec, source: TrainedModel, params: dict[str, Any], input_shape, num_classes: int, submodules: list[str]) -> None:
    init = spec.model.init_from
    loc = ["body", "model", "init_from"]
    problems = []
    if source.params != params:
        problems.append((["body", "model", "params"], f"params differ from model {source.id}'s {source.params}; weights would not fit"))
    if list(source.input_shape) != list(input_shape):
        problems.append((loc + ["model_id"], f"model {source.id} takes input {source.input_shape}, this dataset gives {list(input_shape)}"))
    if len(source.class_names) != num_classes and not init.reset_head:
        problems.append((loc + ["reset_head"], f"model {source.id} has {len(source.class_names)} classes, this dataset {num_classes}: set reset_head"))
    for i, name in enumerate(init.freeze):
        if name not in submodules:
            problems.append((loc + ["freeze", i], f"no submodule {name!r}; {spec.model.architecture} has {', '.join(submodules)}"))
    if problems:
        raise InvalidInput("incompatible init_from: " + "; ".join(msg for _, msg in problems), [detail(l, m) for l, m in problems])


def _check_dataset_fits(spec: JobSpec, info: DatasetInfo) -> None:
    classifier = models.get(spec.model.architecture).task == "classify"  # known: params were validated first
    if classifier and info.task != "classification":
        raise InvalidInput(
            f"dataset {info.ref!r} has no labels; {spec.model.architecture} is a classifier",
            [detail(["body", "data", "dataset"], "a classifier needs a labelled dataset")],
        )
    fraction = spec.data.validation_fraction
    if fraction > 0 and info.task == "classification":
        held_out = int(info.num_samples * fraction)
        if held_out < info.num_classes or info.num_samples - held_out < info.num_classes:
            raise InvalidInput(
                f"validation_fraction {fraction} of {info.num_samples} samples cannot hold every one of {info.num_classes} classes on both sides",
                [detail(["body", "data", "validation_fraction"], "too small (or too large) for a stratified split")],
            )
        if info.class_counts and min(info.class_counts) < 2:
            rare = info.class_names[list(info.class_counts).index(min(info.class_counts))]
            raise InvalidInput(
                f"class {rare!r} has {min(info.class_counts)} sample(s); a stratified split needs at least 2",
                [detail(["body", "data", "validation_fraction"], "a class has too few samples to split")],
            )


def create(*, session: Session, tenant_id: str, spec: JobSpec, max_attempts: int) -> Job:
    info = dataset_service.resolve(session=session, tenant_id=tenant_id, ref=spec.data.dataset)
    source = None
    if spec.model.init_from is not None:
        source = session.scalar(select(TrainedModel).where(TrainedModel.id == spec.model.init_from.model_id, TrainedModel.tenant_id == tenant_id))
        if source is None:
            raise InvalidInput(
                f"unknown model {spec.model.init_from.model_id!r} in init_from",
                [detail(["body", "model", "init_from", "model_id"], "not one of your models")],
            )
    stored_spec = spec.model_dump(mode="json")
    stored_spec["model"]["params"] = validate_spec(spec, info, source)  # what will run, defaults included
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        name=spec.name,
        state="queued",
        spec=stored_spec,
        dataset_ref=spec.data.dataset,
        max_attempts=max_attempts,
        epochs=spec.training.epochs,
        latest_metrics={},
        created_at=utcnow(),
        enqueued_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get(*, session: Session, tenant_id: str, job_id: str, kind: str = "train") -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id, Job.kind == kind))
    if job is None:
        raise NotFound(f"{'inference job' if kind == 'inference' else 'job'} {job_id!r} not found")
    return job


def list_jobs(*, session: Session, tenant_id: str, state: str | None, limit: int, cursor: str | None, kind: str = "train") -> Page:
    stmt = select(Job).where(Job.tenant_id == tenant_id, Job.kind == kind)
    if state:
        stmt = stmt.where(Job.state == state)
    rows = list(session.scalars(newest_first(stmt, Job, limit=limit, cursor=cursor)))
    return page_of(rows, limit)


def request_cancel(*, session: Session, tenant_id: str, job_id: str, kind: str = "train") -> Job:
    job = get(session=session, tenant_id=tenant_id, job_id=job_id, kind=kind)
    if job.state in TERMINAL_STATES:
        raise Conflict(f"job {job_id!r} is already {job.state}")
    # Conditional on the state we read, so a worker claiming the job at this instant cannot be overwritten.
    now = utcnow()
    cancelled_while_queued = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == "queued")
        .values(state="cancelled", cancel_requested=True, finished_at=now, lease_expires_at=None)
    ).rowcount
    if not cancelled_while_queued:
        session.execute(update(Job).where(Job.id == job.id, Job.state == "running").values(cancel_requested=True))
    session.refresh(job)
    return job


# --- the worker's side: lease, progress, outcome -------------------------------------------------


def claim(*, session: Session, job_id: str, worker_id: str, lease_seconds: float) -> Job | None:
    """One atomic conditional UPDATE: the job is ours if it was queued, or running on an expired lease.

    Returns the claimed job (attempt already incremented), or None: someone else has it, or it is done.
    """
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.cancel_requested.is_(False),
            or_(Job.state == "queued", and_(Job.state == "running", Job.lease_expires_at < now)),
        )
        .values(
            state="running",
            worker_id=worker_id,
            attempt=Job.attempt + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=now,
        )
    ).rowcount
    if not claimed:
        return None
    return session.scalar(select(Job).where(Job.id == job_id).execution_options(populate_existing=True))


def _owned(job_id: str, worker_id: str, attempt: int):
    return and_(Job.id == job_id, Job.worker_id == worker_id, Job.attempt == attempt, Job.state == "running")


@dataclass(frozen=True)
class Heartbeat:
    still_owner: bool
    cancel_requested: bool


def heartbeat(
    *, session: Session, job_id: str, worker_id: str, attempt: int, lease_seconds: float,
    progress: dict[str, int], latest_metrics: dict[str, float] | None,
) -> Heartbeat:
    values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds), **progress}
    if latest_metrics:
        values["latest_metrics"] = latest_metrics
    renewed = session.execute(update(Job).where(_owned(job_id, worker_id, attempt)).values(**values)).rowcount
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return Heartbeat(still_owner=bool(renewed), cancel_requested=bool(cancel))


def finish(
    *, session: Session, job_id: str, worker_id: str, attempt: int, state: str,
    error: tuple[str, str] | None = None, model_id: str | None = None, extra: dict[str, Any] | None = None,
) -> bool:
    """Moves an owned running job to a terminal state. False if the lease was lost meanwhile."""
    assert state in TERMINAL_STATES
    values: dict[str, Any] = {"state": state, "finished_at": utcnow(), "lease_expires_at": None, **(extra or {})}
    if error:
        values["error_type"], values["error_message"] = error
    if model_id:
        values["model_id"] = model_id
    return bool(session.execute(update(Job).where(_owned(job_id, worker_id, attempt)).values(**values)).rowcount)


def release(*, session: Session, job_id: str, worker_id: str, attempt: int) -> bool:
    """Hands an owned running job back to the queue at once (graceful stop), without waiting for expiry."""
    return bool(session.execute(
        update(Job).where(_owned(job_id, worker_id, attempt))
        .values(state="queued", worker_id=None, lease_expires_at=None, enqueued_at=utcnow(), handbacks=Job.handbacks + 1)
    ).rowcount)


# --- the reconciler's side -----------------------------------------------------------------------


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
