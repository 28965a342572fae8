"""Dependencies with short names, so route signatures read like sentences."""

from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.errors import Unauthorized
from app.services import tenants
from app.services.tenants import Caller
from app.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request. Routes that write commit explicitly, then enqueue (after commit)."""
    with request.app.state.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


def current_caller(request: Request, session: SessionDep) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
    try:
        return tenants.authenticate(session=session, key=key.strip())
    except Unauthorized as exc:
        exc.headers = {"WWW-Authenticate": "Bearer"}
        raise


CallerDep = Annotated[Caller, Depends(current_caller)]
