"""Tenant-scoped reads: every query of a tenant's rows starts from ``owned``, so none can forget
the tenant, and another tenant's row is simply not found."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.core.errors import NotFound

Row = TypeVar("Row")


def owned(table: type[Row], tenant_id: str) -> Select[tuple[Row]]:
    return select(table).where(table.tenant_id == tenant_id)  # type: ignore[attr-defined]


def find(session: Session, table: type[Row], tenant_id: str, row_id: str, **match: Any) -> Row | None:
    """The tenant's row with this id (and, e.g., ``kind="inference"``), or None."""
    stmt = owned(table, tenant_id).where(table.id == row_id)  # type: ignore[attr-defined]
    for column, value in match.items():
        stmt = stmt.where(getattr(table, column) == value)
    return session.scalar(stmt)


def get(session: Session, table: type[Row], tenant_id: str, row_id: str, what: str, **match: Any) -> Row:
    """The tenant's row, or a 404 naming ``what`` was looked for: another tenant's row is not found either."""
    row = find(session, table, tenant_id, row_id, **match)
    if row is None:
        raise NotFound(f"{what} {row_id!r} not found")
    return row
