"""Dependencies with short names, so route signatures read like sentences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.api.broker import Broker
from app.core import tenants
from app.core.artifacts.store import ArtifactStore
from app.core.db.engine import read_only
from app.core.errors import Unauthorized
from app.core.paging import CURSOR_PATTERN
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


REFUSED = "refused"  # a key that failed, remembered like a good one: a flood of bad keys costs no database work


def _authenticate(request: Request, key: str) -> Caller:
    """Looks the key up, and notes it was used (at most once a minute: this runs once per
    KILN_AUTH_CACHE_SECONDS per key and process, not per request)."""
    sessions = request.app.state.sessions
    with read_only(sessions()) as session:
        caller = tenants.authenticate(session=session, key=key)
    with sessions() as session:
        tenants.touch_key(session=session, key_id=caller.key_id)
        session.commit()
    return caller


async def authenticate_request(request: Request) -> Caller:
    """The caller of a valid key. Keys (and refusals) are remembered for ``KILN_AUTH_CACHE_SECONDS``
    per process, so the predict hot path does no database read; a revoked key stops working within that."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
    callers = request.app.state.callers
    digest = tenants.hash_key(key)
    caller = callers.get(digest)
    if caller is None:
        try:
            caller = await run_in_threadpool(_authenticate, request, key)
        except Unauthorized:
            caller = REFUSED
        callers.put(digest, caller)
    if caller is REFUSED:
        raise Unauthorized("invalid API key (unknown, revoked or expired)", headers={"WWW-Authenticate": "Bearer"})
    return caller


# Declares the scheme in the OpenAPI schema (clients and fuzzers learn how to authenticate);
# authenticate_request reads the header itself, as the predict fast lane does.
BEARER = HTTPBearer(auto_error=False, scheme_name="apiKey", description="an API key: 'Authorization: Bearer kiln_…'")


def scoped(scope: str, limit: str | None = None):
    """A dependency: the caller, if its key has ``scope``; else a 403 naming it. With ``limit``, the
    request also counts against that rate limit of the key (``app.api.ratelimit``): a 429 past it,
    and its ``RateLimit-*`` headers on the answer."""

    async def caller_with(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None) -> Caller:
        caller = await authenticate_request(request)
        caller.require(scope, f"{request.method} {request.url.path}")
        if limit:
            # middleware.RateLimitHeaders puts them on the answer, whatever it is (an error, a file).
            request.state.rate_limit_headers = await request.app.state.rate_limiter.hit(limit, caller.key_id)
        return caller

    return caller_with


ReadCaller = Annotated[Caller, Depends(scoped("read"))]
TrainCaller = Annotated[Caller, Depends(scoped("train"))]
SubmitCaller = Annotated[Caller, Depends(scoped("train", limit="submit"))]
UploadCaller = Annotated[Caller, Depends(scoped("train", limit="upload"))]
PredictCaller = Annotated[Caller, Depends(scoped("predict", limit="predict"))]
AdminCaller = Annotated[Caller, Depends(scoped("admin"))]


class PageQuery:
    """``?limit=&cursor=``: one page of a list, newest first; ``next_cursor`` of the last answer asks for the next."""

    def __init__(self, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                 cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")] = None):
        self.limit, self.cursor = limit, cursor


PageDep = Annotated[PageQuery, Depends()]
