"""Keyset paging, newest first: stable under inserts, one index range scan per page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.core.errors import InvalidInput, detail


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


# A cursor names the last row of a page: its creation time in microseconds and its id. Readable,
# not opaque, so the schema can say exactly what one is: any string matching CURSOR_PATTERN is a
# valid place to start (a page after it, perhaps empty); anything else is a 422.
CURSOR_PATTERN = r"^[0-9]{1,16}-[a-z]{2,4}_[0-9a-f]{32}$"
STEP_CURSOR_PATTERN = r"^[0-9]{1,18}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def encode_cursor(created_at: datetime, item_id: str) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=timezone.utc)
    return f"{(created_at - _EPOCH) // timedelta(microseconds=1)}-{item_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not _CURSOR.match(cursor):
        raise InvalidInput("invalid cursor", [detail(["query", "cursor"], "not a cursor this API returned")])
    micros, item_id = cursor.split("-", 1)
    return _EPOCH + timedelta(microseconds=int(micros)), item_id


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
    """The cursor of pages in step order (a metric's raw points): the last step of the page."""
    return str(step)


def step_of_cursor(cursor: str) -> int:
    if not re.match(STEP_CURSOR_PATTERN, cursor):
        raise InvalidInput("invalid cursor", [detail(["query", "cursor"], "not a cursor this API returned")])
    return int(cursor)
