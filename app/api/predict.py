"""Predict's HTTP side, shared by the FastAPI route and the fast lane in front of it
(app.api.fast_lane): read the request (JSON, .npy or multipart images) through
``app.serving.decode``, answer through the runtime."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import numpy as np
from anyio import to_thread
from fastapi import Request
from fastapi.responses import Response

from app.core.errors import InvalidInput, detail
from app.serving import decode
from app.serving.loading import Servable
from app.serving.runtime import ServingRuntime

PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict$")
NPY = "application/x-npy"  # np.save's bytes: (N, *sample_shape) samples, no JSON to parse


async def predict_response(request: Request, runtime: ServingRuntime, tenant_id: str, model_id: str, top_k: int | None,
                           checkpoint: str | None = None, headers: dict[str, str] | None = None) -> Response:
    limits = runtime.limits
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async def read_samples(servable: Servable) -> tuple[np.ndarray, None]:
            return await image_samples(request, servable, limits), None
    elif content_type.startswith(NPY):
        async def read_samples(servable: Servable) -> tuple[np.ndarray, np.ndarray | None]:
            return decode.npy_samples(await request.body(), servable, limits)
    else:
        async def read_samples(servable: Servable) -> tuple[np.ndarray, np.ndarray | None]:
            return decode.json_samples(await request.body(), servable, limits)
    answered_by, body = await runtime.predict(tenant_id, model_id, latest=checkpoint == "latest", read_samples=read_samples, top_k=top_k)
    return Response(body, media_type="application/json", headers={**answered_headers(answered_by), **(headers or {})})


def answered_headers(servable: Servable) -> dict[str, str]:
    """Which weights answered: a model's id, or a training job's checkpoint (``job_...@step-N``);
    and, for a registered name, which version (``digits@3``)."""
    if servable.registered is None:
        return {"Kiln-Model": servable.id}
    return {"Kiln-Model": servable.id, "Kiln-Model-Version": servable.registered}


async def image_samples(request: Request, servable: Servable, limits: decode.Limits) -> np.ndarray:
    """The images of a multipart body, counted before any is decoded, decoded off the event loop."""
    try:
        form = await request.form(max_files=limits.files + 1, max_fields=16)  # one more, to say how many is too many
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's
        raise InvalidInput(f"the multipart body cannot be read: {exc}", [detail(["body"], "malformed multipart")]) from None
    files = [f for f in form.getlist("file") if not isinstance(f, str)]
    if not files:
        raise InvalidInput("a multipart predict request needs one or more 'file' fields with PNG or JPEG images",
                           [detail(["body", "file"], "field required")])
    decode.check_images(len(files), servable, limits)
    blobs = [await f.read() for f in files]
    return await to_thread.run_sync(lambda: np.stack([decode.image_sample(blob, servable, index=i) for i, blob in enumerate(blobs)]))


def query_of(query_string: bytes) -> tuple[int | None, str | None]:
    """``?top_k=&checkpoint=`` as the route declares them."""
    query = dict(parse_qsl(query_string.decode("latin-1")))
    checkpoint = query.get("checkpoint")
    if checkpoint is not None and checkpoint != "latest":
        raise InvalidInput("invalid request: query.checkpoint: the only checkpoint is 'latest'",
                           [detail(["query", "checkpoint"], "Input should be 'latest'")])
    return top_k_of(query.get("top_k")), checkpoint


MAX_TOP_K = 2**31 - 1  # as the route's schema says


def top_k_of(raw: str | None) -> int | None:
    """An integer from 1 to MAX_TOP_K, or absent."""
    if raw is None:
        return None
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else 0
    if not 1 <= value <= MAX_TOP_K:
        raise InvalidInput(f"invalid request: query.top_k: must be an integer from 1 to {MAX_TOP_K}",
                           [detail(["query", "top_k"], f"must be an integer from 1 to {MAX_TOP_K}")])
    return value
