"""Trained models: the record of what a job produced. Weights live in the artifact store."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import TrainedModel
from app.errors import NotFound
from app.services.paging import Page, newest_first, page_of


def get(*, session: Session, tenant_id: str, model_id: str) -> TrainedModel:
    model = session.scalar(select(TrainedModel).where(TrainedModel.id == model_id, TrainedModel.tenant_id == tenant_id))
    if model is None:
        raise NotFound(f"model {model_id!r} not found")
    return model


def list_models(*, session: Session, tenant_id: str, limit: int, cursor: str | None) -> Page:
    stmt = select(TrainedModel).where(TrainedModel.tenant_id == tenant_id)
    return page_of(list(session.scalars(newest_first(stmt, TrainedModel, limit=limit, cursor=cursor))), limit)


def add(*, session: Session, model: TrainedModel) -> TrainedModel:
    session.add(model)
    session.flush()
    return model


def set_serving(*, session: Session, tenant_id: str, model_id: str, options: dict) -> TrainedModel:
    """Stores the model's micro-batching overrides (null fields: the defaults)."""
    model = get(session=session, tenant_id=tenant_id, model_id=model_id)
    model.serving = {k: v for k, v in options.items() if v is not None} or None
    session.flush()
    return model
