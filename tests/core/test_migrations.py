"""Alembic is the only way the schema is made: the tables and the migrations must agree."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Integer

from app.core.db import migrate
from app.core.db.engine import make_engine
from app.core.db.tables import Base


def _integer_widths_alike_on_sqlite(context, inspected_column, metadata_column, inspected_type, metadata_type):
    """SQLite stores every INTEGER in up to 8 bytes: INTEGER and BIGINT are the same column there.
    None: let Alembic compare as usual."""
    if context.dialect.name == "sqlite" and isinstance(inspected_type, Integer) and isinstance(metadata_type, Integer):
        return False
    return None


def _diff(url: str):
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": _integer_widths_alike_on_sqlite})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrations_match_tables_on_sqlite(tmp_path):
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


def test_migrations_match_tables_on_postgres(postgres_url):
    assert _diff(postgres_url) == []
