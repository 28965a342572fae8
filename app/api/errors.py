"""The handlers that give every error the one shape of ``app.core.errors``, whoever raised it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.core.errors import CODES, KilnError, detail, error_body

log = logging.getLogger("kiln.api")


# -- the one error shape, as the OpenAPI schema documents it -------------------------------------------


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="where: body, query, path or header, then the field's path")
    msg: str


class ErrorContent(BaseModel):
    code: str = Field(description="unauthorized, forbidden, not_found, conflict, payload_too_large, validation_error, "
                                  "too_many_requests, quota_exceeded, unavailable, timeout, …")
    message: str = Field(description="what is wrong, for a person: names the field, the limit and its setting")
    details: list[ErrorDetail]


class ErrorOut(BaseModel):
    error: ErrorContent


WHY = {
    401: "no valid API key: missing, unknown, revoked or expired",
    403: "the key does not have the scope this call needs",
    404: "not found, or not yours (another tenant's resource is not found either)",
    409: "the resource's state does not allow it now",
    413: "over a size limit (the body, an upload, an answer) or the storage quota (code quota_exceeded)",
    422: "invalid request: details name each field at fault",
    429: "over the key's rate limit (Retry-After says when to come back) or the queued-jobs quota (code quota_exceeded)",
    503: "over capacity for now; Retry-After says when to come back",
    504: "the request waited longer than KILN_PREDICT_TIMEOUT_SECONDS",
}
RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "seconds until the limit lets a request through (absent for a quota)", "schema": {"type": "integer"}},
    "RateLimit-Limit": {"description": "requests in the limit's window", "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "requests left in the window", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "seconds until the window resets", "schema": {"type": "integer"}},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an operation documents: those of every authenticated call (401, 403, 422)
    and ``statuses``, each with the one error schema."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted({401, 403, 422, *statuses}):
        documented[status] = {"model": ErrorOut, "description": WHY[status]}
        if status in (429, 503):
            documented[status]["headers"] = RATE_LIMIT_HEADERS if status == 429 else {"Retry-After": RATE_LIMIT_HEADERS["Retry-After"]}
    return documented


def error_response(exc: KilnError, headers: dict[str, str] | None = None, *, path: str = "") -> JSONResponse:
    return JSONResponse(body_for(path, exc.code, exc.message, exc.details), exc.status_code, headers={**(headers or {}), **(exc.headers or {})})


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path: FastAPI has one route per method and path, and
    Starlette's 405 names only the first route's."""
    methods: set[str] = set()
    for route in request.app.state.api_routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def body_for(path: str, code: str, message: str, details: list | None = None) -> dict[str, Any]:
    """The one error shape; under /v2 the Open Inference Protocol's own, {"error": "<message>"},
    which its clients (tritonclient) read."""
    return {"error": message} if path.startswith("/v2") else error_body(code, message, details)


def _answer(request: Request, status: int, code: str, message: str, details: list | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body_for(request.url.path, code, message, details), status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KilnError)
    async def _kiln_error(request: Request, exc: KilnError):
        return _answer(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        details = [detail(err.get("loc", ()), err.get("msg", "invalid")) for err in exc.errors()]
        summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details[:5])
        return _answer(request, 422, "validation_error", f"invalid request: {summary}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:
            # The framework could not parse the body (not UTF-8, a broken multipart): invalid input, like any other.
            message = f"invalid request: the body cannot be read ({exc.detail})"
            return _answer(request, 422, "validation_error", message, [detail(["body"], str(exc.detail))])
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return _answer(request, exc.status_code, CODES.get(exc.status_code, "error"), str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        if _nul_in_text(exc):
            message = "invalid request: a text value holds the NUL character (\\u0000), which the database cannot store"
            return JSONResponse(error_body("validation_error", message, [detail(["request"], "NUL character in text")]), 422)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _answer(request, 500, "internal_error", "internal error; it has been logged")


def _nul_in_text(exc: BaseException) -> bool:
    """PostgreSQL's text cannot hold U+0000 and the driver refuses it before sending: the request's
    fault, wherever the text came from (a name, a label, a query value), and nothing was written."""
    return isinstance(exc, StatementError) and "cannot contain NUL" in str(exc.orig)
