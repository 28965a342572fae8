"""Alembic is the only way the schema is made: the tables and the migrations must agree."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.core.db import migrate
from app.core.db.engine import make_engine
from app.core.db.tables import Base


def _diff(url: str):
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_migrations_match_tables_on_sqlite(tmp_path):
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


def test_migrations_match_tables_on_postgres(postgres_url):
    assert _diff(postgres_url) == []
