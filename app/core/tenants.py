"""Tenants and their API keys. Keys are shown once and stored as a sha256 hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db.tables import ApiKey, Tenant
from app.core.errors import Unauthorized
from app.core.ids import new_id

KEY_PREFIX = "kiln_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    tenant_name: str


def get_or_create_tenant(*, session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(id=new_id("ten"), name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_key(*, session: Session, tenant: Tenant) -> str:
    """Returns the plaintext key; only its hash is kept."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(id=new_id("key"), tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:12]))
    session.flush()
    return key


def has_keys(*, session: Session, tenant: Tenant) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id).limit(1)) is not None


def authenticate(*, session: Session, key: str) -> Caller:
    row = session.execute(
        select(Tenant.id, Tenant.name)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        raise Unauthorized("invalid API key")
    return Caller(tenant_id=row.id, tenant_name=row.name)
