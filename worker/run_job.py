"""One training attempt, start to end: claim the lease, build data and network, train through a
JobContext, then record the model and the outcome. A task that cannot claim leaves the job alone."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback

import orjson
import torch
from sqlalchemy.exc import SQLAlchemyError

import models
from app.artifacts import CHECKPOINT_MODEL, ArtifactStore, job_prefix, model_prefix
from app.db.engine import session_factory
from app.db.tables import TrainedModel
from app.ids import new_id
from app.jobspec import JobSpec
from app.queue import wake_worker
from app.services import jobs as job_service
from app.services import trained_models
from app.settings import Settings
from worker import lifecycle
from worker.batch_inference import run_inference
from worker.data import load_raw, prepare
from worker.gan_trainer import GANTrainer
from worker.job_context import JobContext
from worker.job_log import append_log
from worker.model_files import save_model
from worker.optim import build_optimizer
from worker.rbm_trainer import RBMTrainer
from worker.trainer import NonFiniteLoss, TrainConfig, Trainer, resolve_device
from worker.transfer import init_from

log = logging.getLogger("kiln.worker")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id: str, settings: Settings) -> str | None:
    """Returns the final state this attempt gave the job, or None if it did not claim it."""
    sessions = session_factory(settings.database_url)
    store = ArtifactStore(settings.artifacts_dir)
    me = worker_id()
    with sessions() as session:
        job = job_service.claim(session=session, job_id=job_id, worker_id=me, lease_seconds=settings.lease_seconds)
        session.commit()
    if job is None:
        log.info("job %s: not claimable (taken, finished or cancelled); skipping", job_id)
        return None
    log.info("job %s: attempt %d on %s", job_id, job.attempt, me)
    append_log(store, job_id, f"attempt {job.attempt} started on {me}")

    ctx = JobContext(settings=settings, sessions=sessions, store=store, job_id=job_id, tenant_id=job.tenant_id, worker_id=me, attempt=job.attempt)
    ctx.start()
    lifecycle.register(ctx)
    outcome: dict = {}
    try:
        if job.kind == "inference":
            outcome = run_inference(job, ctx, store, sessions)
        else:
            outcome = _train(job, ctx, store, settings)
    except NonFiniteLoss as exc:
        outcome = {"state": "failed", "error": ("non_finite_loss", str(exc))}
        append_log(store, job_id, traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - any training error fails the job, the worker goes on
        log.exception("job %s failed", job_id)
        outcome = {"state": "failed", "error": (type(exc).__name__, str(exc) or repr(exc))}
        append_log(store, job_id, traceback.format_exc())
    finally:
        lifecycle.unregister(ctx)
        ctx.close()

    if not outcome:
        append_log(store, job_id, f"attempt {job.attempt} stopped: {ctx.stop_reason()}; not recording anything")
        return None
    if outcome["state"] == "queued":
        return _hand_back(settings, sessions, store, job, me)
    return with_retries(lambda: _record_outcome(sessions, store, job, me, outcome), f"job {job_id}: record outcome")


def _train(job, ctx: JobContext, store: ArtifactStore, settings: Settings) -> dict:
    """The training attempt's body; returns the outcome to record ({} when the lease was lost)."""
    job_id = job.id
    spec = JobSpec.model_validate(job.spec)
    arch = models.get(spec.model.architecture)
    params = arch.make_params(spec.model.params)
    takes = arch.input_spec(params)
    prepared = prepare(
        load_raw(spec.data.dataset, store), input_kind=takes.kind, input_size=takes.size,
        input_channels=takes.channels, validation_fraction=spec.data.validation_fraction, seed=spec.seed,
        use_test_split=spec.data.use_test_split,
        standardize=arch.task == "classify",  # generative models learn data scaled to [0, 1]
    )
    torch.manual_seed(spec.seed)
    net = arch.build(params, prepared.preprocessing.input_shape, max(len(prepared.class_names), 1), vocab_size=prepared.preprocessing.vocab_size)
    if arch.task == "classify":  # what predict?checkpoint=latest needs to rebuild the network from a checkpoint
        store.write_bytes(f"{job_prefix(job_id)}/{CHECKPOINT_MODEL}", orjson.dumps({
            "architecture": arch.name, "params": spec.model.params, "input_shape": list(prepared.preprocessing.input_shape),
            "sample_shape": list(prepared.preprocessing.sample_shape), "class_names": prepared.class_names,
            "preprocessing": prepared.preprocessing.to_dict(),
        }))
    init = spec.model.init_from
    if init is not None:
        init_from(net, store, init.model_id, reset_head=init.reset_head, freeze=init.freeze)
    config = TrainConfig(
        epochs=spec.training.epochs, batch_size=spec.training.batch_size, seed=spec.seed, l1=spec.training.l1,
        train_loss_every_steps=settings.train_loss_every_steps,
        max_runtime_seconds=spec.training.max_runtime_seconds or settings.max_runtime_seconds,
        checkpoint_every_steps=spec.training.checkpoint_every_steps,
        crop_padding=spec.training.augmentation.random_crop_padding if spec.training.augmentation else 0,
        horizontal_flip=spec.training.augmentation.horizontal_flip if spec.training.augmentation else False,
        lr_schedule=spec.training.lr_schedule.model_dump(), grad_clip_norm=spec.training.grad_clip_norm,
        label_smoothing=spec.training.label_smoothing, loss=spec.training.loss,
        frozen_modules=tuple(init.freeze) if init else (),
        early_stopping=spec.training.early_stopping.model_dump() if spec.training.early_stopping else None,
        mixed_precision=spec.training.mixed_precision,
        device=resolve_device(settings.device),
    )
    trainer = make_trainer(arch.task, net, spec, prepared, config, ctx)
    result = trainer.fit()
    if ctx.resumed_from_step is not None:
        append_log(store, job_id, f"attempt {job.attempt} resumed from the checkpoint at step {ctx.resumed_from_step}")
    if result.stop_reason is None:
        model_id = new_id("mdl")
        metadata = {
            "id": model_id, "job_id": job_id, "name": spec.name, "architecture": arch.name, "params": spec.model.params,
            "input_shape": list(prepared.preprocessing.input_shape), "sample_shape": list(prepared.preprocessing.sample_shape),
            "class_names": prepared.class_names if arch.task == "classify" else [], "preprocessing": prepared.preprocessing.to_dict(),
            "metrics": result.final_metrics, "parameter_count": sum(p.numel() for p in net.parameters()),
        }
        if arch.task == "generate":  # how generated images map back to raw units
            metadata["preprocessing"]["output_range"] = {"low": trainer.data_low.tolist(), "high": trainer.data_high.tolist()}
        artifact, size = save_model(store, model_id, net, metadata)
        return {"state": "succeeded", "model": (model_id, metadata, artifact, size)}
    if result.stop_reason == "cancelled":
        return {"state": "cancelled"}
    if result.stop_reason == "timeout":
        return {"state": "failed", "error": ("timeout", f"ran past max_runtime_seconds ({config.max_runtime_seconds} s)")}
    if result.stop_reason == "shutdown":
        return {"state": "queued"}
    return {}  # lease lost: the job is someone else's now


def make_trainer(task: str, net, spec: JobSpec, prepared, config: TrainConfig, ctx):
    """The loop for the architecture's task: classifiers, GANs (their own adversarial loop), RBMs (CD-k)."""
    optimizer_spec = spec.training.optimizer.model_dump()
    if task == "generate":
        betas = tuple(optimizer_spec.get("betas", (0.5, 0.999)))
        return GANTrainer(net, prepared.tensors, config, ctx, lr=optimizer_spec["lr"], betas=betas)
    if task == "reconstruct":
        return RBMTrainer(net, prepared.tensors, config, ctx, lr=optimizer_spec["lr"], momentum=optimizer_spec.get("momentum", 0.5), raw01=True)
    return Trainer(net, build_optimizer(net, optimizer_spec), prepared.tensors, config, ctx)


def with_retries(action, what: str, delays=(0.5, 1, 2, 4, 8, 15, 30)):
    """Rides out a short database outage (a PostgreSQL restart) instead of losing the outcome."""
    for delay in (*delays, None):
        try:
            return action()
        except SQLAlchemyError:
            if delay is None:
                raise
            log.warning("%s failed; retrying in %s s", what, delay, exc_info=True)
            time.sleep(delay)


def _hand_back(settings: Settings, sessions, store: ArtifactStore, job, me: str) -> str | None:
    """Graceful stop: the checkpoint is written; give the job back to the queue now, and wake a worker."""

    def release() -> bool:
        with sessions() as session:
            released = job_service.release(session=session, job_id=job.id, worker_id=me, attempt=job.attempt)
            session.commit()
            return released

    if not with_retries(release, f"job {job.id}: release"):
        return None
    append_log(store, job.id, f"attempt {job.attempt} stopped by worker shutdown; checkpointed and returned to the queue")
    wake_worker(settings, job.id)
    return "queued"


def _record_outcome(sessions, store: ArtifactStore, job, me: str, outcome: dict) -> str | None:
    with sessions() as session:
        model_id = None
        if "model" in outcome:
            model_id, meta, artifact, size = outcome["model"]
            trained_models.add(session=session, model=TrainedModel(
                id=model_id, tenant_id=job.tenant_id, job_id=job.id, name=meta["name"], architecture=meta["architecture"],
                params=meta["params"], input_shape=meta["input_shape"], sample_shape=meta["sample_shape"],
                class_names=meta["class_names"], preprocessing=meta["preprocessing"], metrics=meta["metrics"],
                parameter_count=meta["parameter_count"], artifact_path=artifact, size_bytes=size,
            ))
        owned = job_service.finish(
            session=session, job_id=job.id, worker_id=me, attempt=job.attempt, state=outcome["state"],
            error=outcome.get("error"), model_id=model_id,
        )
        if not owned:
            session.rollback()
            log.warning("job %s: lease lost before the outcome was recorded; leaving it to its new owner", job.id)
            if model_id:
                store.delete(model_prefix(model_id))
            return None
        session.commit()
    append_log(store, job.id, f"attempt {job.attempt} ended: {outcome['state']}" + (f" ({outcome['error'][0]}: {outcome['error'][1]})" if outcome.get("error") else ""))
    return outcome["state"]
