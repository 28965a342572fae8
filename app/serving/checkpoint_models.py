"""A model made from one of a training job's checkpoints, the newest or the best by the monitored
metric: a job that timed out, failed or was cancelled after checkpoints still yields what it had
learnt, with the metrics recorded at that step."""

from __future__ import annotations

from typing import Literal

import orjson
from safetensors.torch import save as safetensors_bytes
from sqlalchemy.orm import Session

from app.core import quotas, trained_models
from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.db.tables import Job, TrainedModel
from app.core.errors import Conflict
from app.core.ids import new_id
from app.core.jobs import metrics
from app.core.jobs import service as job_service
from app.core.model_card import write_model
from app.core.settings import Settings
from app.serving.loading import Servable, checkpoint_card, load, newest_checkpoint

Which = Literal["latest", "best"]


def model_from_checkpoint(*, session: Session, store: ArtifactStore, settings: Settings, tenant_id: str, job_id: str,
                          which: Which) -> TrainedModel:
    job = job_service.get(session=session, tenant_id=tenant_id, job_id=job_id)
    card = checkpoint_card(store, job)
    step, key = _best(store, job, settings) if which == "best" else newest_checkpoint(store, job)
    # Rebuilt and loaded as serving loads it: a checkpoint that does not fit its card fails here, not at predict.
    loaded = load(store, Servable.of(f"{job.id}@step-{step}", card, key))
    state = {name: tensor.detach().contiguous() for name, tensor in loaded.net.state_dict().items()}
    weights = safetensors_bytes(state)
    quotas.check_storage(session=session, tenant_id=tenant_id, adding=len(weights))
    card = card.finished(name=f"{job.name} @ step {step}", metrics=metrics.at_step(session=session, tenant_id=tenant_id, job_id=job.id, step=step),
                         parameter_count=sum(p.numel() for p in loaded.net.parameters()))
    saved = write_model(store, new_id("mdl"), weights, card)
    return trained_models.add(session=session, tenant_id=tenant_id, job_id=job.id, saved=saved)


def _best(store: ArtifactStore, job: Job, settings: Settings) -> tuple[int, str]:
    key, info_key = layout.best_checkpoint(job.id)
    if not store.exists(info_key):
        raise Conflict(f"job {job.id} has no best checkpoint: the best is the one with the "
                       f"{'lowest' if settings.checkpoint_monitor_mode == 'min' else 'highest'} {settings.checkpoint_monitor} "
                       f"(KILN_CHECKPOINT_MONITOR), which this job has not recorded yet; use \"latest\"")
    return int(orjson.loads(store.read_bytes(info_key))["step"]), key
