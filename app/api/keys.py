"""API keys over REST: a key with the ``admin`` scope makes, lists and revokes its tenant's keys.
A new key's secret is in the answer to its creation, and nowhere else, ever."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.common import PageOut
from app.api.deps import AdminCaller, PageDep, ReadSessionDep, SessionDep
from app.api.errors import errors
from app.core import tenants
from app.core.db.tables import ApiKey

Scope = Literal["read", "train", "predict", "admin"]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=100, description="what the key is for (an application, a person)")
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=4, description=(
        "read: see the tenant's jobs, datasets and models; train: submit and cancel jobs, upload and delete datasets; "
        "predict: predict, generate, transform; admin: make, list and revoke keys. No more than the calling key has."))]
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="the key stops working after this; null: never")


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="to the minute")
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> "KeyOut":
        return cls(id=key.id, name=key.name, prefix=key.prefix, scopes=key.scopes, created_at=key.created_at,
                   expires_at=key.expires_at, last_used_at=key.last_used_at, revoked_at=key.revoked_at)


class KeyCreated(KeyOut):
    key: str = Field(description="the secret: send it as 'Authorization: Bearer <key>'. Shown this once; only its hash is kept")


class KeyList(PageOut):
    items: list[KeyOut]
    next_cursor: str | None


router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=201, response_model=KeyCreated, operation_id="createKey", responses=errors(413))
def create_key(body: KeyIn, caller: AdminCaller, session: SessionDep, response: Response):
    scopes = tenants.check_scopes(list(body.scopes), granting=caller.scopes)
    tenant = tenants.get_tenant_by_id(session=session, tenant_id=caller.tenant_id)
    key, secret = tenants.create_key(session=session, tenant=tenant, name=body.name, scopes=scopes, expires_in_days=body.expires_in_days)
    session.commit()
    response.headers["Location"] = f"/v1/keys/{key.id}"
    return KeyCreated(**KeyOut.of(key).model_dump(), key=secret)


@router.get("", response_model=KeyList, operation_id="listKeys", responses=errors())
def list_keys(caller: AdminCaller, session: ReadSessionDep, page: PageDep):
    return KeyList.of(tenants.list_keys(session=session, tenant_id=caller.tenant_id, limit=page.limit, cursor=page.cursor))


@router.delete("/{key_id}", status_code=204, operation_id="revokeKey", responses=errors(404))
def revoke_key(key_id: str, caller: AdminCaller, session: SessionDep, request: Request):
    """Every API process stops taking the key within KILN_AUTH_CACHE_SECONDS; this one at once."""
    tenants.revoke_key(session=session, tenant_id=caller.tenant_id, key_id=key_id)
    session.commit()
    request.app.state.callers.drop_values(lambda cached: getattr(cached, "key_id", None) == key_id)
    return Response(status_code=204)
