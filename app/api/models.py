"""Trained models over REST: read them, set their serving options, predict, generate, transform, export."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.common import PageOut
from app.api.deps import PageDep, PredictCaller, ReadCaller, ReadSessionDep, RuntimeDep, SessionDep, StoreDep, TrainCaller
from app.api.downloads import artifact_response
from app.api.errors import errors
from app.api.predict import MAX_TOP_K, predict_response
from app.core import trained_models
from app.core.db.tables import TrainedModel
from app.core.json_input import Integer, bounded_integer


class ModelOut(BaseModel):
    id: str
    name: str
    architecture: str
    params: dict[str, Any]
    input_shape: list[int] = Field(description="what the network takes, after preprocessing")
    sample_shape: list[int] = Field(description="one raw sample as predict takes it")
    class_names: list[str]
    preprocessing: dict[str, Any]
    metrics: dict[str, float]
    parameter_count: int
    size_bytes: int
    serving: "ServingOptions" = Field(description="micro-batching overrides; null fields take the service's defaults")
    job_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, m: TrainedModel) -> "ModelOut":
        return cls(
            id=m.id, name=m.name, architecture=m.architecture, params=m.params, input_shape=m.input_shape,
            sample_shape=m.sample_shape, class_names=m.class_names, preprocessing=m.preprocessing, metrics=m.metrics,
            parameter_count=m.parameter_count, size_bytes=m.size_bytes, serving=ServingOptions(**(m.serving or {})),
            job_id=m.job_id, created_at=m.created_at,
        )


class ServingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    max_batch_size: bounded_integer(ge=1, le=4096) | None = Field(None, description="samples per forward pass (KILN_PREDICT_MAX_BATCH)")
    max_delay_ms: float | None = Field(None, ge=0, le=1000, description="how long an idle model waits for company (KILN_PREDICT_MAX_DELAY_MS)")


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    serving: ServingOptions


ModelOut.model_rebuild()


class ModelList(PageOut):
    items: list[ModelOut]
    next_cursor: str | None


# A sample: an array (of numbers, or of arrays, as deep as the model's sample shape). The runtime
# checks shape and numbers, far cheaper than pydantic on nested lists; this is the schema's word.
# Written as anyOf rather than a list of types, which client generators cannot read.
SAMPLE = {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "array", "items": {}}]}}


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    inputs: list[Any] = Field(min_length=1, json_schema_extra={"items": SAMPLE},
                              description="samples exactly as in the dataset, e.g. 8x8 values 0-16 for builtin:digits")
    lengths: list[Annotated[int, Field(ge=1)]] | None = Field(None, description="sequence models: each sample's real length (default: all of it)")


class PredictOut(BaseModel):
    predictions: list[str]
    probabilities: list[list[float]]


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    n: Integer = Field(16, ge=1, le=256)
    seed: bounded_integer(ge=0, le=2**31 - 1) | None = Field(None, description="the same seed gives the same samples")


class GenerateOut(BaseModel):
    samples: list[Any] = Field(description="n samples in the dataset's raw units and sample shape")


class TransformIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    inputs: list[Any] = Field(min_length=1, json_schema_extra={"items": SAMPLE}, description="samples exactly as in the dataset")


class TransformOut(BaseModel):
    features: list[list[float]] = Field(description="hidden unit probabilities per sample")
    reconstructions: list[Any] = Field(description="one up-down pass, in raw units")


# What a call that runs a model may answer besides 200: its model is missing or not ready, the
# request or the answer is too large, the key is over its rate limit, the model over capacity.
SERVING_ERRORS = errors(404, 409, 413, 429, 503, 504)

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList, operation_id="listModels", responses=errors())
def list_models(caller: ReadCaller, session: ReadSessionDep, page: PageDep):
    return ModelList.of(trained_models.list_models(session=session, tenant_id=caller.tenant_id, limit=page.limit, cursor=page.cursor))


@router.get("/{model_id}", response_model=ModelOut, operation_id="getModel", responses=errors(404))
def get_model(model_id: str, caller: ReadCaller, session: ReadSessionDep):
    return ModelOut.of(trained_models.get(session=session, tenant_id=caller.tenant_id, model_id=model_id))


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictIn.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"},
                                        "description": "PNG or JPEG images, one sample each, converted to the model's channels and size"}},
            }},
            "application/x-npy": {"schema": {"type": "string", "format": "binary",
                                             "description": "np.save of an (N, *sample_shape) numeric array, in the dataset's raw units"}},
        },
    }
}


@router.patch("/{model_id}", response_model=ModelOut, operation_id="updateModel", responses=errors(404, 413))
def update_model(model_id: str, body: ModelPatch, caller: TrainCaller, session: SessionDep, runtime: RuntimeDep):
    """Per-model serving options, merged into those set before (JSON Merge Patch: a field left out
    keeps its value, null returns it to the service's default). This API process applies them at
    once; others within ``KILN_MODEL_RECORD_CACHE_SECONDS``."""
    # Only the fields sent: PATCH merges (RFC 7396), and a field left out keeps its value.
    model = trained_models.set_serving(session=session, tenant_id=caller.tenant_id, model_id=model_id,
                                       options=body.serving.model_dump(exclude_unset=True))
    session.commit()
    runtime.forget(caller.tenant_id, model_id)
    return ModelOut.of(model)


@router.delete("/{model_id}", status_code=204, operation_id="deleteModel", responses=errors(404, 409))
def delete_model(model_id: str, caller: TrainCaller, session: SessionDep, store: StoreDep):
    """The model's record and files (weights, card, exports); a 409 while a queued or running job
    needs it. Other API processes stop serving it within KILN_MODEL_RECORD_CACHE_SECONDS."""
    trained_models.delete(session=session, store=store, tenant_id=caller.tenant_id, model_id=model_id)
    session.commit()
    return Response(status_code=204)


@router.post("/{model_id}/predict", response_model=PredictOut, openapi_extra=PREDICT_BODY, operation_id="predict", responses=SERVING_ERRORS)
async def predict(
    model_id: str, caller: PredictCaller, request: Request, runtime: RuntimeDep,
    top_k: Annotated[int | None, Query(ge=1, le=MAX_TOP_K, description="also answer the k likeliest classes of each sample")] = None,
    checkpoint: Annotated[Literal["latest"] | None, Query(
        description="latest: answer from the newest weights; model_id may then be a training job's id, even while it runs")] = None,
):
    """Samples as JSON ``{"inputs": [...]}``, as a .npy array (``application/x-npy``) or images as multipart ``file`` fields. Concurrent
    requests for one model are micro-batched into one forward pass. (JSON requests are answered by
    app.api.predict's fast lane in front of the router, with this same code.)"""
    return await predict_response(request, runtime, caller.tenant_id, model_id, top_k, checkpoint)


@router.post("/{model_id}/generate", response_model=GenerateOut, operation_id="generate", responses={**SERVING_ERRORS, 200: {"content": {"image/png": {}}}})
async def generate(model_id: str, body: GenerateIn, caller: PredictCaller, runtime: RuntimeDep, format: Literal["json", "png"] = "json"):
    servable = await runtime.servable(caller.tenant_id, model_id)
    samples = await to_thread.run_sync(partial(runtime.generate, servable, body.n, body.seed, png=format == "png"))
    if format == "png":
        return Response(samples, media_type="image/png")
    return {"samples": samples}


@router.post("/{model_id}/transform", response_model=TransformOut, operation_id="transform", responses=SERVING_ERRORS)
async def transform(model_id: str, body: TransformIn, caller: PredictCaller, runtime: RuntimeDep):
    servable = await runtime.servable(caller.tenant_id, model_id)
    return await to_thread.run_sync(runtime.transform, servable, body.inputs)


EXPORT_SUFFIX = {"safetensors": "safetensors", "torchscript": "torchscript.pt", "onnx": "onnx"}


@router.get("/{model_id}/export", response_class=FileResponse, operation_id="exportModel",
            responses={**errors(404, 409), 200: {"content": {"application/octet-stream": {}}}})
async def export_model(
    model_id: str, caller: ReadCaller, runtime: RuntimeDep, store: StoreDep,
    format: Annotated[Literal["safetensors", "torchscript", "onnx"], Query(description="the file to download")],
):
    """The model as one file. TorchScript and ONNX take raw samples, as predict does, and give class
    probabilities: preprocessing is inside. safetensors is the weights alone."""
    servable = await runtime.servable(caller.tenant_id, model_id)
    key = await to_thread.run_sync(runtime.export, servable, format)
    return artifact_response(store, key, "application/octet-stream", f"{model_id}.{EXPORT_SUFFIX[format]}")
