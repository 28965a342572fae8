"""Typed errors: one class per way a call can fail, built from the API's one error shape
``{"error": {"code", "message", "details": [{"loc", "msg"}]}}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class KilnError(Exception):
    """Anything the SDK raises: an answer the API gave, or no answer at all."""

    message: str

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str

    @property
    def path(self) -> str:
        """``body.training.epochs``: where, as a dotted path."""
        return ".".join(str(part) for part in self.loc)


class ApiError(KilnError):
    """The API answered with an error; ``status``, ``code`` and ``details`` say which and where."""

    def __init__(self, status: int, code: str, message: str, details: list[FieldError], retry_after: float | None = None):
        super().__init__(message)
        self.status, self.code, self.details, self.retry_after = status, code, details, retry_after

    @property
    def fields(self) -> list[str]:
        return [d.path for d in self.details]


class Unauthorized(ApiError):
    """401: no valid API key (missing, unknown, revoked or expired)."""


class Forbidden(ApiError):
    """403: the key lacks the scope this call needs."""


class NotFound(ApiError):
    """404: not there, or not yours."""


class Conflict(ApiError):
    """409: the resource's state does not allow it now (e.g. cancelling a finished job)."""


class TooLarge(ApiError):
    """413: over a size limit; the message names the limit and its setting."""


class ValidationError(ApiError):
    """422: the request is invalid; ``details`` name each field at fault."""


class QuotaExceeded(ApiError):
    """A tenant quota (queued jobs, storage) refused the call: waiting will not help, freeing will."""


class RateLimited(ApiError):
    """429 over the key's rate limit: ``retry_after`` seconds until a call goes through."""


class Unavailable(ApiError):
    """503: over capacity for now (``retry_after``), or 504: the request took too long."""


class ServerError(ApiError):
    """5xx: the server failed; its log has the rest."""


class ConnectionFailed(KilnError):
    """No answer at all: the server is down, unreachable, or the connection dropped."""


class JobFailed(KilnError):
    """``Job.wait`` on a job that failed: ``error`` is the job's own (``{"code", "message"}``)."""

    def __init__(self, job: dict[str, Any]):
        error = job.get("error") or {}
        super().__init__(f"job {job['id']} failed: {error.get('message', 'no reason recorded')}")
        self.job, self.error = job, error


class JobCancelled(KilnError):
    """``Job.wait`` on a job that was cancelled."""

    def __init__(self, job: dict[str, Any]):
        super().__init__(f"job {job['id']} was cancelled")
        self.job = job


class WaitTimeout(KilnError, TimeoutError):
    """``Job.wait`` ran out of time; the job goes on."""


BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge, 422: ValidationError,
    429: RateLimited, 503: Unavailable, 504: Unavailable,
}


def retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:  # an HTTP date: not what Kiln sends; treat it as unknown
        return None


def from_response(response: httpx.Response) -> ApiError:
    """The typed error for an error answer, even one that is not Kiln's JSON (a proxy's 502)."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
        details = [FieldError(tuple(d.get("loc", ())), str(d.get("msg", ""))) for d in body.get("details", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, details = "http_error", f"HTTP {response.status_code}: {response.text[:200].strip() or response.reason_phrase}", []
    if code == "quota_exceeded":
        kind: type[ApiError] = QuotaExceeded
    else:
        kind = BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else ApiError)
    return kind(response.status_code, code, message, details, retry_after(response))


def check_stream(response: httpx.Response) -> None:
    """A streamed answer that is an error: read its body, raise its typed error."""
    if not response.is_success:
        response.read()
        raise from_response(response)
