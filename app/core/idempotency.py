"""Idempotent creates: a client that retries a POST with the same ``Idempotency-Key`` (after a
timeout, a dropped connection) gets the first answer again and creates nothing; the same key with
a different body is refused. The key's row is written in the transaction that creates the
resource, so a job and its key exist together or not at all."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.core.db.clock import db_now
from app.core.db.tables import IdempotencyKey
from app.core.errors import InvalidInput, detail


@dataclass(frozen=True)
class Answer:
    """The first request's answer, as it is given again."""

    status_code: int
    body: dict[str, Any]
    location: str | None


def fingerprint(*parts: Any) -> str:
    """Of a request's meaning (its parsed body), so formatting and key order do not matter."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _row(session: Session, tenant_id: str, route: str, key: str, ttl_seconds: float) -> IdempotencyKey | None:
    return session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.route == route, IdempotencyKey.key == key,
        IdempotencyKey.created_at > db_now(-ttl_seconds)))


def earlier(*, session: Session, tenant_id: str, route: str, key: str, request_fingerprint: str, ttl_seconds: float) -> Answer | None:
    """The answer to the key's first request, if one was made within ``ttl_seconds``; a 422 if
    that request had another body."""
    row = _row(session, tenant_id, route, key, ttl_seconds)
    if row is None:
        return None
    if row.fingerprint != request_fingerprint:
        message = (f"Idempotency-Key {key!r} was used within {timedelta(seconds=ttl_seconds)} with a different request body: "
                   "use a new key for a new request")
        raise InvalidInput(message, [detail(["header", "Idempotency-Key"], "used with another body")])
    return Answer(row.status_code, row.body, row.location)


def remember(*, session: Session, tenant_id: str, route: str, key: str, request_fingerprint: str, ttl_seconds: float,
             answer: Answer) -> None:
    """Records the answer in the caller's transaction (replacing an expired use of the key)."""
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.created_at <= db_now(-ttl_seconds)))
    session.add(IdempotencyKey(tenant_id=tenant_id, route=route, key=key, fingerprint=request_fingerprint,
                               status_code=answer.status_code, body=answer.body, location=answer.location, created_at=db_now()))
