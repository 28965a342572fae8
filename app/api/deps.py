"""Dependencies with short names, so route signatures read like sentences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.api.broker import Broker
from app.core import tenants
from app.core.artifacts.store import ArtifactStore
from app.core.db.engine import read_only
from app.core.errors import Unauthorized
from app.core.settings import Settings
from app.core.tenants import Caller
from app.serving.runtime import ServingRuntime


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request. Routes that write commit explicitly, then enqueue (after commit)."""
    with request.app.state.sessions() as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for a route that only reads: on SQLite it takes no write lock, however long the route runs."""
    with read_only(request.app.state.sessions()) as session:
        yield session


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_broker(request: Request) -> Broker:
    return request.app.state.broker


def get_runtime(request: Request) -> ServingRuntime:
    return request.app.state.serving


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
RuntimeDep = Annotated[ServingRuntime, Depends(get_runtime)]


def _authenticate(request: Request, key: str) -> Caller:
    with read_only(request.app.state.sessions()) as session:
        return tenants.authenticate(session=session, key=key)


async def authenticate_request(request: Request) -> Caller:
    """The caller of a valid key. Valid keys are remembered for ``KILN_AUTH_CACHE_SECONDS`` per
    process, so the predict hot path does no database read; a revoked key stops working within that."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
    callers = request.app.state.callers
    caller = callers.get(tenants.hash_key(key))
    if caller is not None:
        return caller
    try:
        caller = await run_in_threadpool(_authenticate, request, key)
    except Unauthorized as exc:
        exc.headers = {"WWW-Authenticate": "Bearer"}
        raise
    callers.put(tenants.hash_key(key), caller)
    return caller


CallerDep = Annotated[Caller, Depends(authenticate_request)]


class PageQuery:
    """``?limit=&cursor=``: one page of a list, newest first; ``next_cursor`` of the last answer asks for the next."""

    def __init__(self, limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: Annotated[str | None, Query(max_length=500)] = None):
        self.limit, self.cursor = limit, cursor


PageDep = Annotated[PageQuery, Depends()]
