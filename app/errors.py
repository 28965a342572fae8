"""One error shape for every 4xx/5xx: ``{"error": {"code", "message", "details": [{"loc", "msg"}]}}``.

Domain errors are exception classes with a status code, raised by the services; the handlers
installed by ``install_error_handlers`` turn each into that body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("kiln.api")


class KilnError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers


class NotFound(KilnError):
    status_code = 404
    code = "not_found"


class Unauthorized(KilnError):
    status_code = 401
    code = "unauthorized"


class Conflict(KilnError):
    status_code = 409
    code = "conflict"


class InvalidInput(KilnError):
    status_code = 422
    code = "validation_error"


class PayloadTooLarge(KilnError):
    status_code = 413
    code = "payload_too_large"


class Unavailable(KilnError):
    """Over capacity for now; ``Retry-After`` says when to come back."""

    status_code = 503
    code = "unavailable"


class GatewayTimeout(KilnError):
    status_code = 504
    code = "timeout"


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def detail(loc: list[str | int] | tuple, msg: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg}


_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "too_many_requests", 503: "unavailable", 504: "timeout",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KilnError)
    async def _kiln_error(_: Request, exc: KilnError):
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError):
        details = [detail(err.get("loc", ()), err.get("msg", "invalid")) for err in exc.errors()]
        summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details[:5])
        return JSONResponse(error_body("validation_error", f"invalid request: {summary}", details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error; it has been logged"), 500)
