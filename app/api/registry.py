"""The model registry over REST: names, their versions, aliases and each alias's history. Thin:
parse, call app.core.registry, shape the answer. Serving reads the registry through the runtime
(``/v1/models/{name}@{alias}/predict``, ``/v2/models/{name}/infer``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.api.common import PageOut
from app.api.deps import PageDep, ReadCaller, ReadSessionDep, SessionDep, SettingsDep, TrainCaller
from app.api.errors import errors
from app.core import registry
from app.core.db.tables import AliasMove, ModelAlias, ModelVersion, RegisteredModel
from app.core.json_input import Integer

router = APIRouter(prefix="/v1/registry", tags=["registry"])


class RegisteredModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")  # the pattern's lookahead
    name: str = Field(pattern=registry.NAME_PATTERN,
                      description="a-z, 0-9, '.', '_', '-', not mdl_/job_; what /v1/models/{name}@{alias} and /v2/models/{name} answer to")


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())
    model_id: str = Field(max_length=40, description="one of your trained models")


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: Integer = Field(ge=1, description="the version the alias points at, KILN_ALIAS_SWITCH_SECONDS from now")


class VersionOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    version: int
    model_id: str
    created_at: datetime


class AliasOut(BaseModel):
    alias: str
    version: int = Field(description="the version it points at (from effective_at)")
    previous_version: int | None = Field(description="the version it answers from until effective_at")
    effective_at: datetime


class RegisteredModelOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    versions: list[VersionOut]
    aliases: list[AliasOut]


class RegisteredModelList(PageOut):
    items: list[RegisteredModelOut]
    next_cursor: str | None


class AliasMoveOut(BaseModel):
    version: int
    previous_version: int | None
    effective_at: datetime = Field(description="when traffic moved")
    moved_at: datetime = Field(description="when the move was asked for")
    key_id: str | None = Field(description="the API key that moved it")


def _outs(session: Session, names: list[RegisteredModel]) -> list[RegisteredModelOut]:
    versions, aliases = registry.versions_of(session, names), registry.aliases_of(session, names)
    return [RegisteredModelOut(id=r.id, name=r.name, created_at=r.created_at, versions=[_version_out(v) for v in versions[r.id]],
                               aliases=[_alias_out(a) for a in aliases[r.id]]) for r in names]


def _out(session: Session, registered: RegisteredModel) -> RegisteredModelOut:
    return _outs(session, [registered])[0]


def _version_out(v: ModelVersion) -> VersionOut:
    return VersionOut(version=v.version, model_id=v.model_id, created_at=v.created_at)


def _alias_out(a: ModelAlias) -> AliasOut:
    return AliasOut(alias=a.alias, version=a.version, previous_version=a.previous_version, effective_at=a.effective_at)


@router.post("", status_code=201, response_model=RegisteredModelOut, operation_id="registerModelName", responses=errors(409, 413))
def create(body: RegisteredModelIn, caller: TrainCaller, session: SessionDep, settings: SettingsDep, request: Request, response: Response):
    registered = registry.create(session=session, tenant_id=caller.tenant_id, name=body.name, max_names=settings.max_registered_models)
    out = _out(session, registered)
    session.commit()
    response.headers["Location"] = str(request.url_for("get_registered_model", name=registered.name))
    return out


@router.get("", response_model=RegisteredModelList, operation_id="listRegisteredModels", responses=errors())
def list_registered(caller: ReadCaller, session: ReadSessionDep, page: PageDep):
    found = registry.list_page(session=session, tenant_id=caller.tenant_id, limit=page.limit, cursor=page.cursor)
    return RegisteredModelList(items=_outs(session, found.items), next_cursor=found.next_cursor)


@router.get("/{name}", response_model=RegisteredModelOut, operation_id="getRegisteredModel", responses=errors(404))
def get_registered_model(name: str, caller: ReadCaller, session: ReadSessionDep):
    return _out(session, registry.get(session=session, tenant_id=caller.tenant_id, name=name))


@router.post("/{name}/versions", status_code=201, response_model=VersionOut, operation_id="addModelVersion", responses=errors(404, 413))
def add_version(name: str, body: VersionIn, caller: TrainCaller, session: SessionDep, settings: SettingsDep):
    version = registry.add_version(session=session, tenant_id=caller.tenant_id, name=name, model_id=body.model_id,
                                   max_versions=settings.max_model_versions)
    out = _version_out(version)
    session.commit()
    return out


@router.put("/{name}/aliases/{alias}", response_model=AliasOut, operation_id="moveAlias", responses=errors(404))
def move_alias(name: str, alias: str, body: AliasIn, caller: TrainCaller, session: SessionDep, settings: SettingsDep):
    """Points the alias at a version. Every API process loads and warms that version first; traffic
    moves at ``effective_at`` (KILN_ALIAS_SWITCH_SECONDS from now) and requests in flight finish on
    the old one. A rollback is a move back."""
    moved = registry.move_alias(session=session, tenant_id=caller.tenant_id, name=name, alias=alias, version=body.version,
                                key_id=caller.key_id, switch_seconds=settings.alias_switch_seconds)
    out = _alias_out(moved)
    session.commit()
    return out


@router.get("/{name}/aliases/{alias}/history", response_model=list[AliasMoveOut], operation_id="getAliasHistory", responses=errors(404))
def alias_history(name: str, alias: str, caller: ReadCaller, session: ReadSessionDep,
                  limit: Annotated[int, Query(ge=1, le=1000, description="the newest moves first")] = 100):
    moves: list[AliasMove] = registry.history(session=session, tenant_id=caller.tenant_id, name=name, alias=alias, limit=limit)
    return [AliasMoveOut(version=m.version, previous_version=m.previous_version, effective_at=m.effective_at, moved_at=m.moved_at,
                         key_id=m.key_id) for m in moves]
