"""A job's event stream (``GET /v1/jobs/{id}/events``, Server-Sent Events), read with httpx-sse.

The stream resumes itself: when the connection drops it reconnects with ``Last-Event-ID``, and the
server sends exactly the events after it, so a reader sees every event once. It ends after the
job's ``end`` event.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from kiln_client.errors import ConnectionFailed, check_stream
from kiln_client.transport import Transport

KINDS = ("state", "progress", "metric", "log", "end")


@dataclass(frozen=True)
class Event:
    id: int
    kind: str  # state | progress | metric | log | end
    data: dict[str, Any]


def stream(transport: Transport, job_id: str, *, after: int = 0, max_reconnects: int = 20) -> Iterator[Event]:
    """Every event of the job after ``after``, through its ``end``; reconnects (with backoff, at
    most ``max_reconnects`` times in a row) when the connection drops."""
    last, failures = after, 0
    # An idle stream gets a ping every 15 s: a read that waits far longer means the connection is gone.
    timeout = httpx.Timeout(10.0, read=60.0)
    while True:
        headers = {"Last-Event-ID": str(last)} if last else {}
        try:
            with connect_sse(transport.http, "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout) as source:
                check_stream(source.response)
                for sse in source.iter_sse():
                    if not sse.event or sse.event not in KINDS or not sse.id:
                        continue
                    event = Event(int(sse.id), sse.event, json.loads(sse.data) if sse.data else {})
                    last, failures = event.id, 0
                    yield event
                    if event.kind == "end":
                        return
        except (httpx.TransportError, SSEError) as exc:
            failures += 1
            if failures > max_reconnects:
                raise ConnectionFailed(f"the event stream of {job_id} dropped {failures} times in a row ({exc})") from exc
            time.sleep(min(5.0, 0.25 * 2 ** (failures - 1)) * (0.5 + random.random() / 2))
            continue
        # The server closed a stream without its end (a restart, or KILN_STREAM_MAX_SECONDS): pick it up again.
        failures += 1
        if failures > max_reconnects:
            raise ConnectionFailed(f"the event stream of {job_id} closed {failures} times in a row without its end")
