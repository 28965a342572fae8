"""Domain errors: exception classes with a status code, raised by the services, and the one body
every 4xx/5xx has: ``{"error": {"code", "message", "details": [{"loc", "msg"}]}}``.

The API's handlers (``app.api.errors``) turn each into that body; nothing here knows HTTP.
"""

from __future__ import annotations

from typing import Any

# The error code each status answers with, whoever raised it (a service here, or the web framework).
CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "too_many_requests", 503: "unavailable", 504: "timeout",
}


class KilnError(Exception):
    status_code = 400
    error_code: str | None = None  # when the status's own code is not specific enough

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers

    @property
    def code(self) -> str:
        return self.error_code or CODES[self.status_code]


class NotFound(KilnError):
    """Absent, or another tenant's: the two are not told apart."""

    status_code = 404


class Unauthorized(KilnError):
    status_code = 401


class Forbidden(KilnError):
    """A valid key without the scope the request needs."""

    status_code = 403


class Conflict(KilnError):
    """The resource's state forbids it now (cancel a finished job, results of an unfinished one)."""

    status_code = 409


class InvalidInput(KilnError):
    status_code = 422


class PayloadTooLarge(KilnError):
    status_code = 413


class TooManyRequests(KilnError):
    """Over a rate limit; ``Retry-After`` says when to come back."""

    status_code = 429


class JobQuotaExceeded(KilnError):
    """The tenant has as many jobs waiting as its quota allows."""

    status_code = 429
    error_code = "quota_exceeded"


class StorageQuotaExceeded(KilnError):
    """The tenant's datasets, models and checkpoints take all the storage its quota allows."""

    status_code = 413
    error_code = "quota_exceeded"


class Unavailable(KilnError):
    """Over capacity for now; ``Retry-After`` says when to come back."""

    status_code = 503


class GatewayTimeout(KilnError):
    status_code = 504


def over_limit(what: str, value: int, limit: int, setting: str, loc: list | None = None) -> PayloadTooLarge:
    """The one answer to a request past a bound: what, how much, the limit and the setting that sets it."""
    message = f"{what} is {value}, over the limit of {limit} ({setting})"
    return PayloadTooLarge(message, [detail(loc, message)] if loc else None)


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def detail(loc: list[str | int] | tuple, msg: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg}


class JobError(Exception):
    """A job failed for a reason its owner can act on: ``message`` is written for them and becomes
    the job's ``error``. Any other exception in a job is reported by its type alone (its text may
    hold server paths or device details), with the traceback in the job's log."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type, self.message = error_type, message
