"""Keyset paging, newest first: stable under inserts, one index range scan per page."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, detail


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def encode_cursor(created_at: datetime, item_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at.isoformat(), item_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, item_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created), str(item_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidInput("invalid cursor", [detail(["query", "cursor"], "not a cursor this API returned")]) from None


def newest_first(stmt, table, *, limit: int, cursor: str | None):
    if cursor:
        created, item_id = decode_cursor(cursor)
        stmt = stmt.where(or_(table.created_at < created, and_(table.created_at == created, table.id < item_id)))
    return stmt.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)


def newest_page(session: Session, stmt: Select, table, *, limit: int, cursor: str | None) -> Page:
    """One page of ``stmt``'s rows, newest first, after ``cursor``."""
    return page_of(list(session.scalars(newest_first(stmt, table, limit=limit, cursor=cursor))), limit)


def page_of(rows: list[Any], limit: int) -> Page:
    if len(rows) > limit:
        last = rows[limit - 1]
        return Page(rows[:limit], encode_cursor(last.created_at, last.id))
    return Page(rows, None)


def step_cursor(step: int) -> str:
    """An opaque cursor for pages in step order (a metric's raw points)."""
    return base64.urlsafe_b64encode(orjson.dumps(["step", step])).decode().rstrip("=")


def step_of_cursor(cursor: str) -> int:
    try:
        kind, step = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if kind == "step" and isinstance(step, int) and step >= 0:
            return step
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        pass
    raise InvalidInput("invalid cursor", [detail(["query", "cursor"], "not a cursor this API returned")])
