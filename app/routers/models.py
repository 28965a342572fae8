"""Trained models: read them and predict with them."""

from __future__ import annotations

from typing import Annotated

from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from app import inference
from app.preprocessing import Preprocessing
from app.services.datasets import png_grid
from app.deps import CallerDep, SessionDep, SettingsDep
from app.schemas import GenerateIn, GenerateOut, ModelList, ModelOut, PredictIn, PredictOut, TransformIn, TransformOut
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


@router.post("/{model_id}/generate", response_model=GenerateOut, responses={200: {"content": {"image/png": {}}}})
def generate(
    model_id: str, body: GenerateIn, caller: CallerDep, session: SessionDep, request: Request,
    format: Literal["json", "png"] = "json",
):
    record = trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id)
    samples = inference.generate(request.app.state.model_cache.get(record), body.n, body.seed)
    if format == "png":
        return Response(png_grid(samples, 1.0 / Preprocessing.from_dict(record.preprocessing).scale), media_type="image/png")
    return {"samples": samples.tolist()}


@router.post("/{model_id}/transform", response_model=TransformOut)
def transform(model_id: str, body: TransformIn, caller: CallerDep, session: SessionDep, settings: SettingsDep, request: Request):
    record = trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id)
    x = inference.samples_array(body.inputs, tuple(record.sample_shape), settings.max_predict_samples)
    return inference.transform(request.app.state.model_cache.get(record), x)
