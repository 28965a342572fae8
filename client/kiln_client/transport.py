"""Requests with the SDK's retry rules, over one httpx connection pool.

Retried, with exponential backoff and jitter: connection errors and 502/503/504 answers, for calls
that are safe to repeat (GET and DELETE, and POSTs carrying an ``Idempotency-Key``, which the SDK
sends on every create); a 429 over the rate limit, for any call (the server did nothing), after
the ``Retry-After`` it names. A quota's 429 is not retried: waiting does not free a quota.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from kiln_client.errors import ConnectionFailed, QuotaExceeded, RateLimited, from_response

RETRY_STATUSES = {502, 503, 504}
SAFE_METHODS = {"GET", "HEAD", "DELETE", "PUT"}
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is raised to the caller rather than slept through


def new_idempotency_key() -> str:
    return f"kiln-client-{uuid.uuid4().hex}"


class Transport:
    def __init__(self, url: str, key: str | None, *, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep):
        headers = {"User-Agent": "kiln-client/0.1"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.url, self.retries, self.backoff, self._sleep = url, retries, backoff, sleep
        self.http = httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, body_factory: Callable[[], dict[str, Any]] | None = None, **kwargs: Any) -> httpx.Response:
        """The answer if it is a success, else the typed error. ``body_factory`` gives fresh
        request arguments for each try (an upload reopens its files)."""
        safe = method in SAFE_METHODS or "Idempotency-Key" in (kwargs.get("headers") or {})
        for attempt in range(self.retries + 1):
            last_try = attempt == self.retries
            fresh = body_factory() if body_factory else {}
            try:
                response = self.http.request(method, path, **kwargs, **fresh)
            except httpx.TransportError as exc:
                if safe and not last_try:
                    self._sleep(self._delay(attempt))
                    continue
                raise ConnectionFailed(f"no answer from {self.url} ({type(exc).__name__}: {exc or 'connection closed'})") from exc
            finally:
                _close_files(fresh)
            if response.is_success:
                return response
            error = from_response(response)
            if last_try or isinstance(error, QuotaExceeded):
                raise error
            if isinstance(error, RateLimited) and (error.retry_after or 0) <= MAX_RETRY_AFTER:
                self._sleep(error.retry_after if error.retry_after is not None else self._delay(attempt))
            elif response.status_code in RETRY_STATUSES and safe:
                self._sleep(min(error.retry_after, MAX_RETRY_AFTER) if error.retry_after is not None else self._delay(attempt))
            else:
                raise error
        raise AssertionError("unreachable: the last try returns or raises")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def _delay(self, attempt: int) -> float:
        return min(8.0, self.backoff * 2**attempt) * (0.5 + random.random() / 2)


def _close_files(args: dict[str, Any]) -> None:
    for _, value in args.get("files") or []:
        handle = value[1] if isinstance(value, tuple) else value
        if hasattr(handle, "close"):
            handle.close()
