"""The model registry: a tenant's models by name, each name's versions (each one trained model),
and aliases (``production``) that point at a version. Moving an alias takes effect a moment later
(KILN_ALIAS_SWITCH_SECONDS), so that every API process loads and warms the new version before
traffic moves; every move is kept, with the key that made it (a rollback is a move back).

What serving asks: ``resolve(name, selector)``, the version a name answers from (and, while a
move is pending, the one it answers from until then)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import scoped, trained_models
from app.core.db.clock import db_clock_now
from app.core.db.tables import AliasMove, ModelAlias, ModelVersion, RegisteredModel
from app.core.errors import Conflict, InvalidInput, NotFound, detail, over_limit
from app.core.ids import new_id
from app.core.paging import Page, newest_page

NAME_PATTERN = r"^(?!mdl_|job_)[a-z0-9][a-z0-9._-]{0,99}$"  # not what model and job ids look like: a name could not be told from one
NAME = re.compile(NAME_PATTERN)
ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
DEFAULT_ALIAS = "production"  # what a name alone answers from (else its newest version)


@dataclass(frozen=True)
class Resolution:
    """What ``name@selector`` answers from: a version and its model, and, while an alias move is
    pending, the version answering until ``effective_at``."""

    name: str
    selector: str | None
    version: int
    model_id: str
    effective_at: datetime | None = None
    previous: tuple[int, str] | None = None  # (version, model_id) answering until effective_at
    versions: tuple[tuple[int, str], ...] = ()  # every (version, model_id) of the name: what a move could go to


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise InvalidInput(f"registered model name {name!r}: 1-100 characters of a-z, 0-9, '.', '_', '-', starting with a letter or "
                           "digit, and not mdl_/job_ (those are ids)", [detail(["body", "name"], "invalid name")])


def create(*, session: Session, tenant_id: str, name: str, max_names: int) -> RegisteredModel:
    check_name(name)
    if find(session=session, tenant_id=tenant_id, name=name) is not None:
        raise Conflict(f"a registered model named {name!r} exists already")
    count = session.scalar(select(func.count()).select_from(RegisteredModel).where(RegisteredModel.tenant_id == tenant_id)) or 0
    if count >= max_names:
        raise over_limit("registered model names", count + 1, max_names, "KILN_MAX_REGISTERED_MODELS", ["body", "name"])
    registered = RegisteredModel(id=new_id("reg"), tenant_id=tenant_id, name=name)
    session.add(registered)
    session.flush()
    return registered


def find(*, session: Session, tenant_id: str, name: str) -> RegisteredModel | None:
    return session.scalars(scoped.owned(RegisteredModel, tenant_id).where(RegisteredModel.name == name)).first()


def get(*, session: Session, tenant_id: str, name: str, lock: bool = False) -> RegisteredModel:
    stmt = scoped.owned(RegisteredModel, tenant_id).where(RegisteredModel.name == name)
    registered = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if registered is None:
        raise NotFound(f"registered model {name!r} not found")
    return registered


def list_page(*, session: Session, tenant_id: str, limit: int, cursor: str | None) -> Page:
    return newest_page(session, scoped.owned(RegisteredModel, tenant_id), RegisteredModel, limit=limit, cursor=cursor)


def versions(session: Session, registered: RegisteredModel) -> list[ModelVersion]:
    return versions_of(session, [registered])[registered.id]


def versions_of(session: Session, names: list[RegisteredModel]) -> dict[str, list[ModelVersion]]:
    """Each name's versions, oldest first, in one query (a page of names reads two, not two per name)."""
    found: dict[str, list[ModelVersion]] = {r.id: [] for r in names}
    for v in session.scalars(select(ModelVersion).where(ModelVersion.registered_model_id.in_(found)).order_by(ModelVersion.version)):
        found[v.registered_model_id].append(v)
    return found


def aliases_of(session: Session, names: list[RegisteredModel]) -> dict[str, list[ModelAlias]]:
    found: dict[str, list[ModelAlias]] = {r.id: [] for r in names}
    for a in session.scalars(select(ModelAlias).where(ModelAlias.registered_model_id.in_(found)).order_by(ModelAlias.alias)):
        found[a.registered_model_id].append(a)
    return found


def add_version(*, session: Session, tenant_id: str, name: str, model_id: str, max_versions: int) -> ModelVersion:
    """The next version of ``name``: one of the tenant's models (a 404 for anyone else's)."""
    registered = get(session=session, tenant_id=tenant_id, name=name, lock=True)  # one new version at a time
    model = trained_models.find(session=session, tenant_id=tenant_id, model_id=model_id)
    if model is None:
        raise InvalidInput(f"unknown model {model_id!r}", [detail(["body", "model_id"], "unknown model")])
    last = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.registered_model_id == registered.id)) or 0
    if last >= max_versions:  # versions are never deleted: the newest's number is their count
        raise over_limit(f"versions of {name!r}", last + 1, max_versions, "KILN_MAX_MODEL_VERSIONS", ["body", "model_id"])
    version = ModelVersion(registered_model_id=registered.id, version=last + 1, model_id=model.id)
    session.add(version)
    session.flush()
    return version


def _version(session: Session, registered: RegisteredModel, version: int) -> ModelVersion:
    row = session.get(ModelVersion, (registered.id, version))
    if row is None:
        raise NotFound(f"registered model {registered.name!r} has no version {version}")
    return row


def move_alias(*, session: Session, tenant_id: str, name: str, alias: str, version: int, key_id: str | None,
               switch_seconds: float) -> ModelAlias:
    """Points ``alias`` at ``version`` from ``switch_seconds`` from now; until then it answers from
    the version it answers from now."""
    if not ALIAS.match(alias):
        raise InvalidInput(f"alias {alias!r}: 1-64 characters of a-z, 0-9, '_', '-', starting with a letter",
                           [detail(["path", "alias"], "invalid alias")])
    registered = get(session=session, tenant_id=tenant_id, name=name, lock=True)  # moves of one name in turn
    _version(session, registered, version)
    now = db_now_value(session)
    row = session.get(ModelAlias, (registered.id, alias))
    answering = None if row is None else (row.previous_version if row.effective_at > now else row.version)
    effective_at = now + timedelta(seconds=switch_seconds) if answering is not None else now  # a new alias has nothing to warm past
    if row is None:
        row = ModelAlias(registered_model_id=registered.id, alias=alias, version=version, previous_version=None, effective_at=effective_at)
        session.add(row)
    else:
        row.version, row.previous_version, row.effective_at = version, answering, effective_at
    session.add(AliasMove(registered_model_id=registered.id, alias=alias, version=version, previous_version=answering,
                          effective_at=effective_at, moved_at=now, key_id=key_id))
    session.flush()
    return row


def db_now_value(session: Session) -> datetime:
    """The database's clock, the one every API process compares ``effective_at`` against, as it
    reads now: after the lock, so that a move is never timed before what a process could have read."""
    return session.scalar(select(db_clock_now()))


def history(*, session: Session, tenant_id: str, name: str, alias: str, limit: int) -> list[AliasMove]:
    registered = get(session=session, tenant_id=tenant_id, name=name)
    return list(session.scalars(select(AliasMove).where(AliasMove.registered_model_id == registered.id, AliasMove.alias == alias)
                                .order_by(AliasMove.id.desc()).limit(limit)))


def resolve(*, session: Session, tenant_id: str, name: str, selector: str | None) -> Resolution:
    """``name`` (its production alias, else its newest version), ``name@3`` or ``name@alias``."""
    registered = get(session=session, tenant_id=tenant_id, name=name)
    every = tuple((v.version, v.model_id) for v in versions(session, registered))
    if selector is not None and selector.isdigit():
        row = _version(session, registered, int(selector))
        return Resolution(name, selector, row.version, row.model_id, versions=every)
    alias = session.get(ModelAlias, (registered.id, selector or DEFAULT_ALIAS))
    if alias is None:
        if selector is not None:
            raise NotFound(f"registered model {name!r} has no alias {selector!r}")
        newest = session.scalars(select(ModelVersion).where(ModelVersion.registered_model_id == registered.id)
                                 .order_by(ModelVersion.version.desc())).first()
        if newest is None:
            raise NotFound(f"registered model {name!r} has no version yet: POST /v1/registry/{name}/versions")
        return Resolution(name, selector, newest.version, newest.model_id, versions=every)
    previous = None
    if alias.previous_version is not None:
        previous = (alias.previous_version, _version(session, registered, alias.previous_version).model_id)
    return Resolution(name, selector, alias.version, _version(session, registered, alias.version).model_id, alias.effective_at, previous, every)

