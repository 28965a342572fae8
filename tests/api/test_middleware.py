"""The body limit holds while a body streams in, whatever its Content-Length says, or without one."""

from __future__ import annotations

import asyncio

from app.api.middleware import BodySizeLimit


def test_a_chunked_body_without_content_length_over_the_limit_is_413(client, auth, settings):
    def chunks():
        for _ in range(8):
            yield b" " * (settings.max_request_bytes // 4)

    r = client.post("/v1/jobs", content=chunks(), headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large" and str(settings.max_request_bytes) in r.json()["error"]["message"]


def test_a_body_longer_than_its_content_length_says_is_cut_off_at_the_limit():
    async def app_reading_everything(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    body = iter([{"type": "http.request", "body": b"x" * 600, "more_body": True}, {"type": "http.request", "body": b"x" * 600}])
    sent = []

    async def receive():
        return next(body)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/v1/jobs", "headers": [(b"content-length", b"10")]}
    asyncio.run(BodySizeLimit(app_reading_everything, max_bytes=1000)(scope, receive, send))
    assert sent[0]["status"] == 413 and b"1000 bytes" in sent[1]["body"]
