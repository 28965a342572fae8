"""Metric series on both databases: downsampled in SQL, spikes kept, raw points paged."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.core import bootstrap, tenants
from app.core.db.engine import session_factory
from app.core.jobs import metrics
from app.core.jobs import service as job_service
from app.core.jobs.spec import JobSpec
from app.core.settings import Settings

SPEC = JobSpec.model_validate({"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}})


@pytest.fixture(params=["sqlite", "postgres"])
def job(request, tmp_path):
    url = request.getfixturevalue("own_postgres_url") if request.param == "postgres" else ""
    settings = Settings(data_dir=tmp_path, database_url=url)
    bootstrap.prepare(settings)
    sessions = session_factory(settings.database_url)
    at = datetime.now(timezone.utc)
    with sessions() as s:
        tenant = tenants.get_or_create_tenant(session=s, name="t")
        job = job_service.create(session=s, tenant_id=tenant.id, spec=SPEC, max_attempts=1)
        points = [metrics.Point("loss", step, 0, float(step % 10), at) for step in range(1, 5001)]
        points[3333] = metrics.Point("loss", 3334, 0, -7.0, at)  # a dip a chart must show
        metrics.write(session=s, tenant_id=tenant.id, job_id=job.id, points=points)
        s.commit()
    return sessions, tenant.id, job.id


def test_a_series_longer_than_max_points_keeps_each_stretchs_extremes(job):
    sessions, tenant, job_id = job
    with sessions() as s:
        loss = metrics.series(session=s, tenant_id=tenant, job_id=job_id, names=["loss"], max_points=100)["loss"]
    assert loss.total == 5000 and 50 <= len(loss.points) <= 100  # M4: first, last, lowest, highest of 25 stretches
    values = [p["value"] for p in loss.points]
    assert min(values) == -7.0 and max(values) == 9.0
    steps = [p["step"] for p in loss.points]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 5000


def test_raw_points_come_a_page_at_a_time(job):
    sessions, tenant, job_id = job
    with sessions() as s:
        page, after = metrics.points(session=s, tenant_id=tenant, job_id=job_id, name="loss", since_step=4990, until_step=None, limit=6)
        assert [p["step"] for p in page] == [4991, 4992, 4993, 4994, 4995, 4996] and after == 4996
        rest, after = metrics.points(session=s, tenant_id=tenant, job_id=job_id, name="loss", since_step=after, until_step=None, limit=6)
        assert [p["step"] for p in rest] == [4997, 4998, 4999, 5000] and after is None
