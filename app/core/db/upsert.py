"""INSERT ... ON CONFLICT DO UPDATE, which both databases speak but SQLAlchemy builds per dialect."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session):
    """The ``insert`` construct of the session's database, the one that has ``on_conflict_do_update``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {dialect}")  # pragma: no cover - only the two backends Kiln supports
