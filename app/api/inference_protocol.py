"""The Open Inference Protocol's REST endpoints (/v2, as Triton and KServe define them), so that
clients written for those servers (tritonclient, KServe's) call Kiln as they are. Thin: the
protocol's reading and writing is app.serving.inference_protocol; the same keys, scopes, limits
and micro-batcher as /v1 predict. Failures answer the protocol's {"error": "..."} body (errors.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import BrokerDep, PredictCaller, ReadCaller, ReadSessionDep, RuntimeDep, StoreDep
from app.api.predict import answered_headers
from app.core.db.engine import reachable
from app.core.errors import NotFound
from app.serving import inference_protocol as protocol
from app.serving.loading import Servable
from app.serving.runtime import ID_PREFIXES, ServingRuntime

VERSION = "1"  # a model id names one set of weights: its one version


class ProtocolErrorOut(BaseModel):
    """The protocol's error body: its clients read the message from "error"."""

    error: str


PROTOCOL_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": why, "model": ProtocolErrorOut}
    for status, why in ((401, "no valid API key"), (403, "the key lacks the scope"), (404, "no such model or version"),
                        (413, "the body is over KILN_MAX_REQUEST_BYTES"), (422, "the request is not one this model takes"),
                        (429, "over a rate limit"), (503, "the model is over capacity"), (504, "the model did not answer in time"))
}

router = APIRouter(prefix="/v2", tags=["inference protocol (v2)"])


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Tensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[Tensor]
    outputs: list[Tensor]


@router.get("", response_model=ServerMetadata, operation_id="oipServerMetadata")
def server_metadata(request: Request):
    return ServerMetadata(name="kiln", version=request.app.version, extensions=["binary_tensor_data"])


@router.get("/health/live", operation_id="oipLive")
def live():
    return {"live": True}


@router.get("/health/ready", operation_id="oipReady", responses={503: {"description": "the database, broker or store does not answer"}})
def ready(session: ReadSessionDep, broker: BrokerDep, store: StoreDep):
    is_ready = reachable(session) and broker.reachable() and store.reachable()
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


async def _servable(runtime: ServingRuntime, tenant_id: str, name: str, version: str | None) -> Servable:
    """``name``: a registered name (no version: its production alias, else its newest version) or
    a model id (whose one version is 1)."""
    if name.startswith(ID_PREFIXES):
        if version is not None and version != VERSION:
            raise NotFound(f"model {name!r} has no version {version!r}: its one version is {VERSION!r}")
        servable = await runtime.servable(tenant_id, name)
    else:
        if version is not None and not version.isdigit():
            raise NotFound(f"registered model {name!r} has no version {version!r}: versions are numbers")
        servable = await runtime.servable(tenant_id, f"{name}@{version}" if version else name)
    servable.require("classify", "the inference protocol")
    return servable


def version_of(servable: Servable) -> str:
    return servable.registered.rpartition("@")[2] if servable.registered else VERSION


@router.get("/models/{name}", response_model=ModelMetadata, operation_id="oipModelMetadata", responses=PROTOCOL_ERRORS)
async def model_metadata(name: str, caller: ReadCaller, runtime: RuntimeDep):
    """Inputs and outputs with names, datatypes and shapes, from the model card (of the version that
    answers), and every version that may be asked for by number."""
    servable = await _servable(runtime, caller.tenant_id, name, None)
    versions = [VERSION] if name.startswith(ID_PREFIXES) else [str(v) for v in await runtime.registered_versions(caller.tenant_id, name)]
    return protocol.metadata(name, versions, servable)


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata, operation_id="oipModelVersionMetadata", responses=PROTOCOL_ERRORS)
async def model_version_metadata(name: str, version: str, caller: ReadCaller, runtime: RuntimeDep):
    servable = await _servable(runtime, caller.tenant_id, name, version)
    return protocol.metadata(name, [version_of(servable)], servable)


@router.get("/models/{name}/ready", operation_id="oipModelReady", responses=PROTOCOL_ERRORS)
async def model_ready(name: str, caller: ReadCaller, runtime: RuntimeDep):
    """Ready once loaded in this process: asking loads it, so the first infer pays no load."""
    await runtime.loaded(await _servable(runtime, caller.tenant_id, name, None))
    return {"name": name, "ready": True}


@router.get("/models/{name}/versions/{version}/ready", operation_id="oipModelVersionReady", responses=PROTOCOL_ERRORS)
async def model_version_ready(name: str, version: str, caller: ReadCaller, runtime: RuntimeDep):
    await runtime.loaded(await _servable(runtime, caller.tenant_id, name, version))
    return {"name": name, "version": version, "ready": True}


INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name", "datatype", "shape"]}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"]}}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "the JSON header (Inference-Header-Content-Length bytes), then the binary tensors"}},
}}}


@router.post("/models/{name}/infer", operation_id="oipInfer", openapi_extra=INFER_BODY, responses=PROTOCOL_ERRORS)
async def infer(name: str, request: Request, caller: PredictCaller, runtime: RuntimeDep):
    return await infer_response(request, runtime, caller.tenant_id, name, None)


@router.post("/models/{name}/versions/{version}/infer", operation_id="oipVersionInfer", openapi_extra=INFER_BODY, responses=PROTOCOL_ERRORS)
async def version_infer(name: str, version: str, request: Request, caller: PredictCaller, runtime: RuntimeDep):
    return await infer_response(request, runtime, caller.tenant_id, name, version)


async def infer_response(request: Request, runtime: ServingRuntime, tenant_id: str, name: str, version: str | None,
                         headers: dict[str, str] | None = None) -> Response:
    """Infer's answer, for the route and for the fast lane in front of it (app.api.fast_lane)."""
    servable = await _servable(runtime, tenant_id, name, version)
    asked = protocol.read_request(await request.body(), request.headers.get(protocol.HEADER_LENGTH))
    x, lengths = protocol.samples(asked, servable, runtime.limits)
    probs = await runtime.classify(servable, x, lengths)
    body, header_length = protocol.answer(name, version_of(servable), asked, probs, servable.card.class_names)
    headers = {**answered_headers(servable), **(headers or {})}
    if header_length is None:
        return Response(body, media_type="application/json", headers=headers)
    return Response(body, media_type="application/octet-stream", headers={**headers, protocol.HEADER_LENGTH: str(header_length)})
