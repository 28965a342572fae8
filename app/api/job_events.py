"""A job's live stream: ``GET /v1/jobs/{id}/events`` (Server-Sent Events, resumable with
``Last-Event-ID``) and ``GET /v1/jobs/{id}/logs?follow=true`` (the log as chunked text, for
``curl -N``). Both read the job's events from the database, so any API process serves any client;
a stream polls for new events every ``KILN_EVENTS_POLL_SECONDS`` and ends after the job's ``end``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import ReadCaller
from app.api.errors import errors
from app.core.db.engine import read_only
from app.core.db.tables import JobEvent
from app.core.errors import TooManyRequests
from app.core.jobs import events
from app.core.jobs import service as job_service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
BATCH = 500  # events read per poll
HEARTBEAT_SECONDS = 15  # a comment line this often, so proxies keep an idle stream open


@router.get("/{job_id}/events", operation_id="getJobEvents", responses={
    **errors(404, 429), 200: {"content": {"text/event-stream": {}}, "description": "events: state, progress, metric, log, end"}})
async def job_events(
    job_id: str, caller: ReadCaller, request: Request,
    last_event_id: Annotated[str, Header(alias="Last-Event-ID", pattern=r"^[0-9]{0,18}$",
                                         description="the id of the last event seen: the stream resumes after it")] = "",
):
    """The job's events as Server-Sent Events, from the first (or after ``Last-Event-ID``) to its
    ``end``: ``state`` ({state, attempt}, every transition; with ``cancel_requested: true`` when a
    cancel is asked of a running job), ``progress`` ({epoch, step,
    total_steps, eta_seconds}), ``metric`` ({points: [{name, step, epoch, value}]}, as written),
    ``log`` ({line}) and ``end`` ({state}). Each has an ``id``; reconnecting with the last one
    seen gives exactly the events missed."""
    after = _seq(last_event_id)
    await _known_job(request, caller.tenant_id, job_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for event in _follow(request, caller.tenant_id, job_id, after, events.KINDS):
            yield ServerSentEvent(data=orjson.dumps(event.data).decode(), event=event.kind, id=str(event.seq))

    _check_room(request, caller.tenant_id)  # here, so a tenant over its limit gets a 429, not a stream that closes at once
    return EventSourceResponse(_counted(request, caller.tenant_id, stream()), ping=HEARTBEAT_SECONDS,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def follow_log(request: Request, tenant_id: str, job_id: str):
    """``logs?follow=true``: every line once, the last one too, ending when the job ends."""
    job = await _known_job(request, tenant_id, job_id)
    if job.state in ("succeeded", "failed", "cancelled") and not await _has_events(request, tenant_id, job_id):
        # A job older than the event stream: its log file is the whole story.
        def whole() -> str:
            with _reader(request) as session:
                return job_service.read_log(session=session, store=request.app.state.store, tenant_id=tenant_id, job_id=job_id)
        return PlainTextResponse(await anyio.to_thread.run_sync(whole))

    async def lines() -> AsyncIterator[bytes]:
        async for event in _follow(request, tenant_id, job_id, 0, ("log", "end")):
            if event.kind == "log":
                yield event.data["line"].encode()

    _check_room(request, tenant_id)
    return StreamingResponse(_counted(request, tenant_id, lines()), media_type="text/plain; charset=utf-8",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _seq(raw: str) -> int:
    return int(raw) if raw else 0  # digits only: the header's pattern


def _reader(request: Request):
    return read_only(request.app.state.sessions())


async def _known_job(request: Request, tenant_id: str, job_id: str):
    def get():
        with _reader(request) as session:
            job = job_service.get(session=session, tenant_id=tenant_id, job_id=job_id)  # 404 for other tenants' jobs
            session.expunge(job)
            return job
    return await anyio.to_thread.run_sync(get)


async def _has_events(request: Request, tenant_id: str, job_id: str) -> bool:
    def read():
        with _reader(request) as session:
            return bool(events.after(session, tenant_id=tenant_id, job_id=job_id, seq=0, limit=1))
    return await anyio.to_thread.run_sync(read)


async def _follow(request: Request, tenant_id: str, job_id: str, after: int, kinds: tuple[str, ...]) -> AsyncIterator[JobEvent]:
    """The job's events after ``after``, as they are written, until its ``end`` (or the client goes)."""
    settings = request.app.state.settings
    poll, deadline = settings.events_poll_seconds, time.monotonic() + settings.stream_max_seconds

    def read(seq: int) -> list[JobEvent]:
        with _reader(request) as session:
            found = events.after(session, tenant_id=tenant_id, job_id=job_id, seq=seq, limit=BATCH, kinds=kinds)
            session.expunge_all()
            return found

    while True:
        batch = await anyio.to_thread.run_sync(read, after)
        for event in batch:
            yield event
            after = event.seq
            if event.kind == "end":
                return
        if len(batch) < BATCH:
            if await request.is_disconnected() or time.monotonic() > deadline:
                return  # a stream is bounded too: KILN_STREAM_MAX_SECONDS
            await asyncio.sleep(poll)


def _check_room(request: Request, tenant_id: str) -> None:
    limit = request.app.state.settings.max_streams_per_tenant
    if request.app.state.streams.get(tenant_id, 0) >= limit:
        raise TooManyRequests(f"this tenant has {limit} streams open in this API process, its limit (KILN_MAX_STREAMS_PER_TENANT); "
                              "close one, or retry", headers={"Retry-After": "5"})


async def _counted(request: Request, tenant_id: str, body: AsyncIterator):
    """The stream, counted among the tenant's open ones while it runs."""
    streams = request.app.state.streams
    streams[tenant_id] = streams.get(tenant_id, 0) + 1
    try:
        async for item in body:
            yield item
    finally:
        streams[tenant_id] -= 1
        if not streams[tenant_id]:
            del streams[tenant_id]
