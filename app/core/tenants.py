"""Tenants and their API keys. A key is 256 random bits, shown once, stored as its sha256; it has a
name, scopes (what it may do), an optional expiry, and the time it was last used."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.core import scoped
from app.core.db.clock import db_now
from app.core.db.tables import ApiKey, Tenant
from app.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized, detail
from app.core.ids import new_id
from app.core.paging import Page, newest_page

KEY_PREFIX = "kiln_"
# read: see everything of the tenant's; train: submit and cancel jobs, upload and delete datasets,
# set serving options; predict: predict, generate, transform; admin: make, list and revoke keys.
SCOPES = ("read", "train", "predict", "admin")
LAST_USED_EVERY_SECONDS = 60  # how stale last_used_at may be: no write on every request


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    tenant_name: str
    key_id: str = ""
    scopes: frozenset[str] = frozenset(SCOPES)

    def require(self, scope: str, what: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"{what} needs a key with the {scope!r} scope; this key has {', '.join(sorted(self.scopes)) or 'none'}")


def get_or_create_tenant(*, session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(id=new_id("ten"), name=name)
        session.add(tenant)
        session.flush()
    return tenant


def get_tenant(*, session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound(f"no tenant {name!r}")
    return tenant


def get_tenant_by_id(*, session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    return tenant


def check_scopes(scopes: list[str], granting: frozenset[str] | None = None) -> list[str]:
    """Scopes of a new key: known ones, and (made by a key) no more than the maker has."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}", [detail(["body", "scopes"], "unknown scope")])
    if granting is not None and not set(scopes) <= granting:
        beyond = sorted(set(scopes) - granting)
        raise Forbidden(f"a key cannot grant scopes it does not have: {', '.join(beyond)}")
    return [s for s in SCOPES if s in scopes]


def create_key(*, session: Session, tenant: Tenant, name: str = "", scopes: list[str] | None = None,
               expires_in_days: float | None = None) -> tuple[ApiKey, str]:
    """The key's row and its secret, which is shown once; only its hash is kept. Its expiry is in
    the database's time, like every check of it."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=new_id("key"), tenant_id=tenant.id, key_hash=hash_key(secret), prefix=secret[:12], name=name,
                 scopes=check_scopes(list(SCOPES) if scopes is None else scopes),
                 expires_at=None if expires_in_days is None else db_now(expires_in_days * 86400))
    session.add(key)
    session.flush()
    session.refresh(key)
    return key, secret


def list_keys(*, session: Session, tenant_id: str, limit: int, cursor: str | None = None) -> Page:
    return newest_page(session, scoped.owned(ApiKey, tenant_id), ApiKey, limit=limit, cursor=cursor)


def revoke_key(*, session: Session, tenant_id: str, key_id: str) -> ApiKey:
    key = scoped.get(session, ApiKey, tenant_id, key_id, "key")
    session.execute(update(ApiKey).where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None)).values(revoked_at=db_now()))
    session.refresh(key)
    return key


def has_keys(*, session: Session, tenant: Tenant) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id).limit(1)) is not None


def authenticate(*, session: Session, key: str) -> Caller:
    """The caller of a key that is neither revoked nor expired (in the database's time)."""
    row = session.execute(
        select(Tenant.id, Tenant.name, ApiKey.id.label("key_id"), ApiKey.scopes)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None),
               or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > db_now()))
    ).first()
    if row is None:
        raise Unauthorized("invalid API key (unknown, revoked or expired)")
    return Caller(tenant_id=row.id, tenant_name=row.name, key_id=row.key_id, scopes=frozenset(row.scopes))


def touch_key(*, session: Session, key_id: str) -> None:
    """Records that a key was used, at most once a minute."""
    session.execute(update(ApiKey).where(
        ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < db_now(-LAST_USED_EVERY_SECONDS)),
    ).values(last_used_at=db_now()))
