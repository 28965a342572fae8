"""The predict endpoint's HTTP side, shared by the FastAPI route and the fast lane in front of it:
read JSON samples or uploaded images, answer through the serving runtime.

The fast lane takes ``POST /v1/models/{id}/predict`` before FastAPI's router and dependency
machinery, which cost more per request than parsing, batching and the forward pass together
(measured by bench/predict_load.py). It runs inside the app's own middleware (body size limit,
form-as-JSON, the 500 handler) and gives the same answers and errors as the route, which stays for
the OpenAPI schema and for the paths the lane leaves to it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from app.deps import authenticate_request
from app.errors import InvalidInput, KilnError, detail, error_body
from app.image_input import image_to_sample
from app.preprocessing import Preprocessing
from app.serving import parse_predict_json

PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict$")


async def predict_response(request: Request, tenant_id: str, model_id: str, top_k: int | None, checkpoint: str | None = None) -> Response:
    runtime = request.app.state.serving
    if checkpoint == "latest":
        record = await runtime.latest(tenant_id, model_id)
    else:
        record = await runtime.record(tenant_id, model_id)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        x, lengths = await image_samples(request, record), None
    else:
        x, lengths = parse_predict_json(await request.body(), tuple(record.sample_shape), runtime.settings.max_predict_samples)
    try:
        answer = await runtime.predict(record, x, lengths, top_k)
    except FileNotFoundError:
        if checkpoint != "latest":
            raise
        # The checkpoint was rotated out since it was looked up: look again, once.
        runtime.forget_latest(tenant_id, model_id)
        record = await runtime.latest(tenant_id, model_id)
        answer = await runtime.predict(record, x, lengths, top_k)
    # Which weights answered: the model itself, or a training job's checkpoint (``job_...@step-N``).
    return Response(answer, media_type="application/json", headers={"Kiln-Model": record.id})


async def image_samples(request: Request, record) -> np.ndarray:
    limit = request.app.state.settings.max_predict_samples
    try:
        form = await request.form(max_files=limit, max_fields=16)
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's
        raise InvalidInput(f"the multipart body cannot be read: {exc}", [detail(["body"], "malformed multipart")]) from None
    files = [f for f in form.getlist("file") if not isinstance(f, str)]
    if not files:
        raise InvalidInput("a multipart predict request needs one or more 'file' fields with PNG or JPEG images",
                           [detail(["body", "file"], "field required")])
    pre = Preprocessing.from_dict(record.preprocessing)
    return np.stack([image_to_sample(await f.read(), pre, index=i) for i, f in enumerate(files)])


def query_of(query_string: bytes) -> tuple[int | None, str | None]:
    """``?top_k=&checkpoint=`` as the route declares them."""
    query = dict(parse_qsl(query_string.decode("latin-1")))
    checkpoint = query.get("checkpoint")
    if checkpoint is not None and checkpoint != "latest":
        raise InvalidInput("invalid request: query.checkpoint: the only checkpoint is 'latest'",
                           [detail(["query", "checkpoint"], "Input should be 'latest'")])
    return top_k_of(query.get("top_k")), checkpoint


def top_k_of(raw: str | None) -> int | None:
    """An integer of at least 1, or absent."""
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInput("invalid request: query.top_k: must be an integer of at least 1",
                           [detail(["query", "top_k"], "must be an integer of at least 1")])
    return value


class PredictFastLane:
    """JSON predict requests, answered without FastAPI's routing; everything else passes through."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            match = PREDICT_PATH.match(scope["path"])
            if match and not _multipart(scope):
                request = Request(scope, receive)
                try:
                    caller = await authenticate_request(request)
                    top_k, checkpoint = query_of(scope["query_string"])
                    response = await predict_response(request, caller.tenant_id, match.group(1), top_k, checkpoint)
                except KilnError as exc:
                    response = JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status_code, headers=exc.headers)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _multipart(scope) -> bool:
    return any(name == b"content-type" and value.startswith(b"multipart/") for name, value in scope["headers"])
