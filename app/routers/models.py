"""Trained models: read them and predict with them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from app import export, inference
from app.deps import CallerDep, SessionDep, SettingsDep
from app.predict_http import predict_response
from app.preprocessing import Preprocessing
from app.schemas import GenerateIn, GenerateOut, ModelList, ModelOut, ModelPatch, PredictIn, PredictOut, TransformIn, TransformOut
from app.services import trained_models
from app.services.datasets import png_grid

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


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictIn.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"},
                                        "description": "PNG or JPEG images, one sample each, converted to the model's channels and size"}},
            }},
        },
    }
}


@router.patch("/{model_id}", response_model=ModelOut)
def update_model(model_id: str, body: ModelPatch, caller: CallerDep, session: SessionDep, request: Request):
    """Per-model serving options. This API process applies them at once; others within
    ``KILN_MODEL_RECORD_CACHE_SECONDS``."""
    model = trained_models.set_serving(session=session, tenant_id=caller.tenant_id, model_id=model_id, options=body.serving.model_dump())
    session.commit()
    request.app.state.serving.forget_record(caller.tenant_id, model_id)
    return ModelOut.of(model)


@router.post("/{model_id}/predict", response_model=PredictOut, openapi_extra=PREDICT_BODY)
async def predict(
    model_id: str, caller: CallerDep, request: Request,
    top_k: Annotated[int | None, Query(ge=1, description="also answer the k likeliest classes of each sample")] = None,
    checkpoint: Annotated[Literal["latest"] | None, Query(
        description="latest: answer from the newest weights; model_id may then be a training job's id, even while it runs")] = None,
):
    """Samples as JSON ``{"inputs": [...]}`` or images as multipart ``file`` fields. Concurrent
    requests for one model are micro-batched into one forward pass. (JSON requests are answered by
    app.predict_http's fast lane in front of the router, with this same code.)"""
    return await predict_response(request, caller.tenant_id, model_id, top_k, checkpoint)


@router.post("/{model_id}/generate", response_model=GenerateOut, responses={200: {"content": {"image/png": {}}}})
def generate(
    model_id: str, body: GenerateIn, caller: CallerDep, session: SessionDep, request: Request,
    format: Literal["json", "png"] = "json",
):
    record = trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id)
    samples = inference.generate(request.app.state.serving.cache.get(record), body.n, body.seed)
    if format == "png":
        return Response(png_grid(samples, 1.0 / Preprocessing.from_dict(record.preprocessing).scale), media_type="image/png")
    return {"samples": samples.tolist()}


@router.post("/{model_id}/transform", response_model=TransformOut)
def transform(model_id: str, body: TransformIn, caller: CallerDep, session: SessionDep, settings: SettingsDep, request: Request):
    record = trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id)
    x = inference.samples_array(body.inputs, tuple(record.sample_shape), settings.max_predict_samples)
    return inference.transform(request.app.state.serving.cache.get(record), x)


EXPORT_SUFFIX = {"safetensors": "safetensors", "torchscript": "torchscript.pt", "onnx": "onnx"}


@router.get("/{model_id}/export", response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}}})
def export_model(
    model_id: str, caller: CallerDep, session: SessionDep, request: Request,
    format: Annotated[Literal["safetensors", "torchscript", "onnx"], Query(description="the file to download")],
):
    """The model as one file. TorchScript and ONNX take raw samples, as predict does, and give class
    probabilities: preprocessing is inside. safetensors is the weights alone."""
    record = trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id)
    path = export.export_path(request.app.state.serving.cache, record, format)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{model_id}.{EXPORT_SUFFIX[format]}")
