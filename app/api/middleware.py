"""The app's own ASGI middleware: a byte limit on every request body, enforced while it streams in
(Content-Length can lie or be absent), and curl's form-encoded JSON bodies read as the JSON they are."""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException

from app.api.errors import body_for


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` as the limit is crossed. An HTTPException, because FastAPI turns any
    other error met while reading a body into a 400; this one its handler answers as a 413."""

    def __init__(self, message: str):
        super().__init__(status_code=413, detail=message)


class BodySizeLimit:
    """``max_bytes`` for every request (KILN_MAX_REQUEST_BYTES), ``upload_max_bytes`` for paths under
    ``upload_prefix``, dataset uploads (KILN_MAX_UPLOAD_BYTES)."""

    def __init__(self, app, max_bytes: int, upload_max_bytes: int | None = None, upload_prefix: str = "/v1/datasets"):
        self.app = app
        self.default_max = max_bytes
        self.upload_max = upload_max_bytes or max_bytes
        self.upload_prefix = upload_prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope.get("path", "").startswith(self.upload_prefix):
            limit, setting = self.upload_max, "KILN_MAX_UPLOAD_BYTES"
        else:
            limit, setting = self.default_max, "KILN_MAX_REQUEST_BYTES"
        await self._limited(scope, receive, send, limit, f"request body over the limit of {limit} bytes ({setting})")

    async def _limited(self, scope, receive, send, limit: int, message: str):
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return await self._reject(scope, send, message)
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(message)
            return event

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, send, message)

    async def _reject(self, scope, send, message: str):
        body = orjson.dumps(body_for(scope.get("path", ""), "payload_too_large", message))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class FormAsJson:
    """``curl -d @job.json`` labels a JSON body application/x-www-form-urlencoded. Kiln takes no
    urlencoded forms anywhere, so such a body is read as the JSON it is (invalid JSON is still a 422)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = scope.get("headers", [])
            if any(n == b"content-type" and v.split(b";")[0].strip() == b"application/x-www-form-urlencoded" for n, v in headers):
                scope = dict(scope)
                scope["headers"] = [(n, b"application/json" if n == b"content-type" else v) for n, v in headers]
        await self.app(scope, receive, send)


class RateLimitHeaders:
    """Puts the ``RateLimit-*`` headers that a rate-limited route's dependency left in the request's
    state (``deps.scoped``) on the answer, whatever answers: the route's model, a raw response (a
    PNG, a file), or an error handler. The predict fast lane sets its own and never reaches this."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_limits(message):
            if message["type"] == "http.response.start":
                limits = scope.get("state", {}).get("rate_limit_headers")
                if limits:
                    present = {name.lower() for name, _ in message.get("headers", [])}
                    extra = [(name.lower().encode(), value.encode()) for name, value in limits.items() if name.lower().encode() not in present]
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)


class EmptyQueryAsAbsent:
    """``?state=&limit=`` means what ``?`` does: a parameter left empty (a form's blank field, a
    script's unset variable) is dropped before validation, rather than refused as not a state or
    not a number."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["query_string"]:
            query: bytes = scope["query_string"]
            if query.endswith(b"=") or b"=&" in query:
                kept = b"&".join(pair for pair in query.split(b"&") if pair and not pair.endswith(b"="))
                scope = {**scope, "query_string": kept}
        await self.app(scope, receive, send)
