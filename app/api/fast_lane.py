"""The fast lane: ``POST /v1/models/{id}/predict`` (JSON and .npy) and the inference protocol's
``POST /v2/models/{name}[/versions/{n}]/infer``, answered before FastAPI's router and dependency
machinery, which cost more per request than parsing, batching and the forward pass together
(measured by bench/predict_load.py). It runs inside the app's own middleware (body size limit,
form-as-JSON, the 500 handler), checks the same key, scope and rate limit, and gives the same
answers and errors as the routes, which stay for the OpenAPI schema and for what the lane leaves
to them (multipart images)."""

from __future__ import annotations

import re
from time import perf_counter

from fastapi import Request

from app.api.deps import authenticate_request
from app.api.errors import error_response
from app.api.inference_protocol import infer_response
from app.api.predict import PREDICT_PATH, predict_response, query_of
from app.api.prometheus import PredictMeter
from app.core.errors import KilnError
from app.serving import telemetry

INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")


class PredictFastLane:
    def __init__(self, app, metered: bool = True):
        self.app, self.metered = app, metered  # metered: predict's count and latency for /metrics (both lanes)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if match := PREDICT_PATH.match(path):
                if _multipart(scope):  # images: through the router
                    return await self._metered_router(scope, receive, send, match.group(1))
                return await self._answer(scope, receive, send, match.group(1), None)
            if match := INFER_PATH.match(path):
                return await self._answer(scope, receive, send, match.group(1), match)
        await self.app(scope, receive, send)

    async def _metered_router(self, scope, receive, send, model: str):
        if not self.metered:
            return await self.app(scope, receive, send)
        meter = PredictMeter(model, send)
        try:
            return await self.app(scope, receive, meter.send)
        finally:
            meter.done()

    async def _answer(self, scope, receive, send, model: str, infer: re.Match | None):
        started = perf_counter()
        request = Request(scope, receive)
        limited: dict[str, str] = {}
        try:
            caller = await authenticate_request(request)
            caller.require("predict", f"POST {scope['path']}")
            limited = await request.app.state.rate_limiter.hit("predict", caller.key_id)
            runtime = request.app.state.serving
            if infer is None:
                top_k, checkpoint = query_of(scope["query_string"])
                response = await predict_response(request, runtime, caller.tenant_id, model, top_k, checkpoint, limited)
            else:
                response = await infer_response(request, runtime, caller.tenant_id, model, infer.group(2), limited)
        except KilnError as exc:
            response = error_response(exc, limited, path=scope["path"])
        try:
            await response(scope, receive, send)
        finally:
            if self.metered:
                telemetry.predict_request(model, response.status_code, perf_counter() - started)


def _multipart(scope) -> bool:
    return any(name == b"content-type" and value.startswith(b"multipart/") for name, value in scope["headers"])
