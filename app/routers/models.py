"""Trained models: read them and predict with them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app import inference
from app.deps import CallerDep, SessionDep, SettingsDep
from app.schemas import ModelList, ModelOut, PredictIn, PredictOut
from app.services import trained_models

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(
    caller: CallerDep, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
):
    page = trained_models.list_models(session=session, tenant_id=caller.tenant_id, limit=limit, cursor=cursor)
    return ModelList(items=[ModelOut.of(m) for m in page.items], next_cursor=page.next_cursor)


@router.get("/{model_id}", response_model=ModelOut)
def get_model(model_id: str, caller: CallerDep, session: SessionDep):
    return ModelOut.of(trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id))


@router.post("/{model_id}/predict", response_model=PredictOut)
def predict(model_id: str, body: PredictIn, caller: CallerDep, session: SessionDep, settings: SettingsDep, request: Request):
    record = trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id)
    x = inference.samples_array(body.inputs, tuple(record.sample_shape), settings.max_predict_samples)
    loaded = request.app.state.model_cache.get(record)
    return inference.predict(loaded, x, body.lengths)
