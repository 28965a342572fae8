"""Trained models: the tenant-scoped record of what a job produced (the one lookup by id), the row
made from a saved model, and its card read back. Weights live in the artifact store."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import scoped
from app.core.artifacts.store import ArtifactStore
from app.core.db.tables import Job, ModelVersion, RegisteredModel, TrainedModel
from app.core.errors import Conflict
from app.core.model_card import ModelCard, SavedModel
from app.core.paging import Page, newest_page


def find(*, session: Session, tenant_id: str, model_id: str) -> TrainedModel | None:
    return scoped.find(session, TrainedModel, tenant_id, model_id)


def get(*, session: Session, tenant_id: str, model_id: str) -> TrainedModel:
    return scoped.get(session, TrainedModel, tenant_id, model_id, "model")


def list_models(*, session: Session, tenant_id: str, limit: int, cursor: str | None) -> Page:
    return newest_page(session, scoped.owned(TrainedModel, tenant_id), TrainedModel, limit=limit, cursor=cursor)


def add(*, session: Session, tenant_id: str, job_id: str, saved: SavedModel) -> TrainedModel:
    """The row of a model a training attempt saved; its card's fields become columns."""
    card = saved.card
    model = TrainedModel(
        id=saved.model_id, tenant_id=tenant_id, job_id=job_id, name=card.name, architecture=card.architecture,
        params=card.params, input_shape=card.input_shape, sample_shape=card.sample_shape, class_names=card.class_names,
        preprocessing=card.preprocessing, metrics=card.metrics, parameter_count=card.parameter_count,
        artifact_path=saved.artifact_path, size_bytes=saved.size_bytes,
    )
    session.add(model)
    session.flush()
    return model


def card_of(model: TrainedModel) -> ModelCard:
    return ModelCard(
        architecture=model.architecture, params=model.params, input_shape=list(model.input_shape),
        sample_shape=list(model.sample_shape), class_names=list(model.class_names), preprocessing=model.preprocessing,
        name=model.name, metrics=model.metrics, parameter_count=model.parameter_count,
    )


def set_serving(*, session: Session, tenant_id: str, model_id: str, options: dict) -> TrainedModel:
    """Merges ``options`` into the model's micro-batching overrides, as JSON Merge Patch (RFC 7396)
    does: a field given replaces its value, null removes it (back to the default), a field left
    out keeps its value."""
    model = get(session=session, tenant_id=tenant_id, model_id=model_id)
    merged = {**(model.serving or {}), **options}
    model.serving = {k: v for k, v in merged.items() if v is not None} or None
    session.flush()
    return model


def users(*, session: Session, tenant_id: str, model_id: str) -> list[str]:
    """The tenant's queued or running jobs that need the model: training from its weights
    (``init_from``), or a batch job predicting with it."""
    active = session.execute(select(Job.id, Job.kind, Job.spec).where(Job.tenant_id == tenant_id, Job.state.in_(("queued", "running"))))
    return [job_id for job_id, kind, spec in active if _model_of(kind, spec) == model_id]


def _model_of(kind: str, spec: dict) -> str | None:
    if kind == "inference":
        return spec.get("model_id")
    return ((spec.get("model") or {}).get("init_from") or {}).get("model_id")


def registered_versions(session: Session, tenant_id: str, model_id: str) -> list[str]:
    """``name@version`` of every registry version that is this model (it cannot be deleted under them)."""
    rows = session.execute(select(RegisteredModel.name, ModelVersion.version)
                           .join(ModelVersion, ModelVersion.registered_model_id == RegisteredModel.id)
                           .where(RegisteredModel.tenant_id == tenant_id, ModelVersion.model_id == model_id))
    return [f"{name}@{version}" for name, version in rows]


def delete(*, session: Session, store: ArtifactStore, tenant_id: str, model_id: str) -> None:
    """The model's row and files; a 409 while a queued or running job needs it."""
    model = get(session=session, tenant_id=tenant_id, model_id=model_id)
    using = users(session=session, tenant_id=tenant_id, model_id=model_id)
    if using:
        raise Conflict(f"model {model_id!r} is used by queued or running jobs: {', '.join(using[:5])}; cancel them or let them end first")
    registered = registered_versions(session, tenant_id, model_id)
    if registered:
        raise Conflict(f"model {model_id!r} is registered as {', '.join(registered[:5])}; delete those registered models first")
    session.delete(model)
    session.flush()
    store.delete(model.artifact_path)
