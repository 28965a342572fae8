"""Metric series on both databases: downsampled in SQL, spikes kept, raw points paged."""

from __future__ import annotations

import random
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
def sessions_and_tenant(request, tmp_path):
    url = request.getfixturevalue("own_postgres_url") if request.param == "postgres" else ""
    settings = Settings(data_dir=tmp_path, database_url=url)
    bootstrap.prepare(settings)
    sessions = session_factory(settings.database_url)
    with sessions() as s:
        tenant = tenants.get_or_create_tenant(session=s, name="t")
        s.commit()
        return sessions, tenant.id


@pytest.fixture
def job(sessions_and_tenant):
    sessions, tenant = sessions_and_tenant
    at = datetime.now(timezone.utc)
    points = [metrics.Point("loss", step, 0, float(step % 10), at) for step in range(1, 5001)]
    points[3333] = metrics.Point("loss", 3334, 0, -7.0, at)  # a dip a chart must show
    return sessions, tenant, _new_job(sessions, tenant, points)


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


def _m4(points: list[tuple[int, float]], width: int) -> list[tuple[int, float]]:
    """M4 by hand: per aligned stretch of ``width`` steps, the first, last, lowest and highest point."""
    stretches: dict[int, list[tuple[int, float]]] = {}
    for step, value in points:
        stretches.setdefault(step // width, []).append((step, value))
    kept = set()
    for run in stretches.values():
        kept |= {run[0], run[-1], min(run, key=lambda p: (p[1], p[0])), min(run, key=lambda p: (-p[1], p[0]))}
    return sorted(kept)


def _new_job(sessions, tenant_id: str, points: list[metrics.Point]) -> str:
    with sessions() as s:
        job = job_service.create(session=s, tenant_id=tenant_id, spec=SPEC, max_attempts=1)
        for start in range(0, len(points), 3000):  # as a worker's flushes write them
            metrics.write(session=s, tenant_id=tenant_id, job_id=job.id, points=points[start : start + 3000])
        s.commit()
        return job.id


def test_a_downsampled_series_is_exactly_m4_of_its_points_whole_or_in_a_window(sessions_and_tenant):
    sessions, tenant = sessions_and_tenant
    rng = random.Random(7)
    at = datetime.now(timezone.utc)
    values = [(step, round(rng.gauss(0, 1), 6)) for step in range(5, 60_005)]
    values[31_337] = (values[31_337][0], 99.0)  # spikes a chart must show, inside a stretch
    values[44_000] = (values[44_000][0], -99.0)
    job_id = _new_job(sessions, tenant, [metrics.Point("loss", step, step // 1000, v, at) for step, v in values])
    for since, until in [(None, None), (1_234, 57_777), (None, 30_000), (20_001, None)]:
        window = [(s, v) for s, v in values if (since is None or s > since) and (until is None or s <= until)]
        with sessions() as s:
            loss = metrics.series(session=s, tenant_id=tenant, job_id=job_id, names=["loss"], since_step=since, until_step=until,
                                  max_points=400)["loss"]
        width, _ = metrics._stretch_width(window[0][0], window[-1][0], 100)
        stretches = window[-1][0] // width - window[0][0] // width + 1
        assert 80 <= stretches <= 100, (since, until, width)  # as fine as max_points allows, within a fifth
        assert [(p["step"], p["value"]) for p in loss.points] == _m4(window, width), (since, until)
        assert loss.total == len(window)
        assert {p["epoch"] for p in loss.points} == {p["step"] // 1000 for p in loss.points}
        spike = values[31_337][0]
        assert (99.0 in [p["value"] for p in loss.points]) == ((since is None or since < spike) and (until is None or spike <= until))


def test_overwritten_points_leave_no_trace_in_the_downsampled_series(sessions_and_tenant):
    """A resumed job replays steps after its checkpoint and overwrites their points: a spike the
    first attempt wrote must vanish from the chart when the replay writes other values."""
    sessions, tenant = sessions_and_tenant
    at = datetime.now(timezone.utc)
    first_try = [metrics.Point("loss", step, 0, 50.0 if step == 12_345 else 1.0, at) for step in range(1, 20_001)]
    job_id = _new_job(sessions, tenant, first_try)
    with sessions() as s:
        metrics.write(session=s, tenant_id=tenant, job_id=job_id, points=[metrics.Point("loss", step, 0, 2.0, at) for step in range(12_000, 12_500)])
        s.commit()
        loss = metrics.series(session=s, tenant_id=tenant, job_id=job_id, names=["loss"], max_points=200)["loss"]
    assert max(p["value"] for p in loss.points) == 2.0 and loss.total == 20_000


def test_rollups_rebuilt_from_points_equal_those_kept_as_points_arrive(sessions_and_tenant):
    """The migration (and bulk loads) rebuild roll-ups from the points; they must match the live ones."""
    from sqlalchemy import delete, select

    from app.core.db.tables import MetricRollup
    from app.core.jobs import metric_rollups

    sessions, tenant = sessions_and_tenant
    at = datetime.now(timezone.utc)
    job_id = _new_job(sessions, tenant, [metrics.Point(name, step, 0, (step * 7919 % 1000) / 10, at)
                                         for name in ("a", "b") for step in range(0, 30_000, 3)])

    def rollups(s):
        return s.execute(select(MetricRollup.__table__).where(MetricRollup.job_id == job_id)
                         .order_by(MetricRollup.name, MetricRollup.level, MetricRollup.bucket)).all()

    with sessions() as s:
        live = rollups(s)
        s.execute(delete(MetricRollup).where(MetricRollup.job_id == job_id))
        metric_rollups.rebuild(session=s, tenant_id=tenant, job_id=job_id)
        assert rollups(s) == live and len(live) > 2 * 30_000 // 3 // 8
