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


def test_the_rollup_migration_sums_up_the_points_already_written(tmp_path):
    """Points written before migration 0010 are charted from roll-ups the upgrade builds."""
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from app.core import tenants
    from app.core.db.engine import session_factory
    from app.core.db.tables import Job, MetricPoint
    from app.core.jobs import metrics
    from app.core.jobs.spec import JobSpec

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0009")
    sessions = session_factory(url)
    spec = JobSpec.model_validate({"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}})
    at = datetime.now(timezone.utc)
    with sessions() as s:
        tenant = tenants.get_or_create_tenant(session=s, name="t")
        job_id = "job_before_rollups"  # a Core insert: only the columns the schema had then
        s.execute(insert(Job), {"id": job_id, "tenant_id": tenant.id, "name": "j", "spec": spec.model_dump(mode="json")})
        s.execute(insert(MetricPoint), [{"job_id": job_id, "tenant_id": tenant.id, "name": "loss", "step": step, "epoch": 0,
                                         "value": -5.0 if step == 2_222 else 1.0, "time": at} for step in range(1, 5_001)])
        s.commit()
        tenant_id = tenant.id
    migrate.upgrade(url)
    with sessions() as s:
        loss = metrics.series(session=s, tenant_id=tenant_id, job_id=job_id, names=None, max_points=100)["loss"]
    assert loss.total == 5_000 and -5.0 in [p["value"] for p in loss.points] and len(loss.points) <= 100
