"""The reconciler's rules against a real (SQLite) database built by the migrations."""

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.api.broker import Broker
from app.core import bootstrap, tenants
from app.core.artifacts.configured import open_store
from app.core.db.engine import session_factory
from app.core.db.tables import Job
from app.core.db.types import utcnow
from app.core.jobs import lease as leases
from app.core.jobs import log
from app.core.jobs import service as job_service
from app.core.jobs.outcome import Outcome
from app.core.jobs.reconciler import reconcile_once
from app.core.jobs.spec import JobSpec
from app.core.settings import Settings

SPEC = JobSpec.model_validate({"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}})


def make_env(tmp_path, database_url: str = ""):
    settings = Settings(data_dir=tmp_path, requeue_grace_seconds=0, lease_seconds=30, database_url=database_url)
    bootstrap.prepare(settings)
    sessions = session_factory(settings.database_url)
    with sessions() as s:
        tenant = tenants.get_or_create_tenant(session=s, name="t")
        s.commit()
    return settings, sessions, tenant.id


@pytest.fixture(params=["sqlite", "postgres"])
def env(request, tmp_path):
    """Settings, sessions and a tenant, on a database of the test's own, on both backends."""
    return make_env(tmp_path, request.getfixturevalue("own_postgres_url") if request.param == "postgres" else "")


def new_job(sessions, tenant_id, max_attempts=3) -> str:
    with sessions() as s:
        job = job_service.create(session=s, tenant_id=tenant_id, spec=SPEC, max_attempts=max_attempts)
        s.commit()
        return job.id


def claim(sessions, job_id, worker="w", lease=30.0):
    with sessions() as s:
        job = leases.claim(session=s, job_id=job_id, worker_id=worker, lease_seconds=lease)
        s.commit()
        return job


def state(sessions, job_id):
    with sessions() as s:
        return s.get(Job, job_id)


def test_claim_is_exclusive_while_the_lease_lives_and_open_once_it_expired(env):
    _, sessions, tenant = env
    job_id = new_job(sessions, tenant)
    assert claim(sessions, job_id, "a").attempt == 1
    assert claim(sessions, job_id, "b") is None
    with sessions() as s:
        s.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    taken = claim(sessions, job_id, "b")
    assert taken.attempt == 2 and taken.worker_id == "b"
    # The old owner can no longer renew or finish.
    with sessions() as s:
        beat = leases.heartbeat(session=s, job_id=job_id, worker_id="a", attempt=1, lease_seconds=30, progress={}, latest_metrics=None)
        assert not beat.still_owner
        assert not leases.finish(session=s, job_id=job_id, worker_id="a", attempt=1, outcome=Outcome("succeeded"))


def test_expired_lease_is_requeued_then_failed_when_attempts_are_spent(env):
    settings, sessions, tenant = env
    job_id = new_job(sessions, tenant, max_attempts=2)
    for attempt in (1, 2):
        assert claim(sessions, job_id, lease=0.001).attempt == attempt
        repairs = reconcile_once(settings, sessions, Broker(settings).send)
        if attempt == 1:
            assert repairs.requeued == [job_id] and state(sessions, job_id).state == "queued"
        else:
            assert repairs.failed == [job_id]
    job = state(sessions, job_id)
    assert job.state == "failed" and job.error_type == "attempts_exhausted"


def test_graceful_handbacks_do_not_count_against_max_attempts(env):
    settings, sessions, tenant = env
    job_id = new_job(sessions, tenant, max_attempts=1)
    for _ in range(3):
        job = claim(sessions, job_id)
        with sessions() as s:
            assert leases.release(session=s, job_id=job_id, worker_id="w", attempt=job.attempt)
            s.commit()
    claim(sessions, job_id, lease=0.001)
    repairs = reconcile_once(settings, sessions, Broker(settings).send)
    assert repairs.failed == [job_id]  # one lost worker = max_attempts, not four
    assert state(sessions, job_id).attempt == 4


def test_queued_job_without_a_message_gets_one_and_only_once_per_grace_period(env):
    settings, sessions, tenant = env
    from app.core.queue import queued_job_ids

    job_id = new_job(sessions, tenant)  # created, never sent: as after a crash between commit and send
    assert job_id not in queued_job_ids(settings)
    assert reconcile_once(settings, sessions, Broker(settings).send).resent == [job_id]
    assert job_id in queued_job_ids(settings)
    assert reconcile_once(settings, sessions, Broker(settings).send).resent == []  # its message is in the broker now


def test_cancelled_and_finished_jobs_are_left_alone(env):
    settings, sessions, tenant = env
    cancelled = new_job(sessions, tenant)
    with sessions() as s:
        job_service.request_cancel(session=s, store=open_store(settings), tenant_id=tenant, job_id=cancelled)
        s.commit()
    repairs = reconcile_once(settings, sessions, Broker(settings).send)
    assert cancelled not in repairs.to_enqueue and state(sessions, cancelled).state == "cancelled"


def expire(sessions, job_id):
    with sessions() as s:
        s.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()


def test_a_newer_attempt_fences_the_older_even_with_the_same_worker_id(env):
    """Worker ids are host:pid and repeat after a container restart: ownership is the attempt too."""
    _, sessions, tenant = env
    job_id = new_job(sessions, tenant)
    assert claim(sessions, job_id, "host:1").attempt == 1
    expire(sessions, job_id)
    assert claim(sessions, job_id, "host:1").attempt == 2
    with sessions() as s:
        stale = leases.heartbeat(session=s, job_id=job_id, worker_id="host:1", attempt=1, lease_seconds=30, progress={"step": 5},
                                 latest_metrics=None)
        assert not stale.still_owner
        assert not leases.finish(session=s, job_id=job_id, worker_id="host:1", attempt=1, outcome=Outcome("succeeded"))
        assert not leases.release(session=s, job_id=job_id, worker_id="host:1", attempt=1)
        assert leases.heartbeat(session=s, job_id=job_id, worker_id="host:1", attempt=2, lease_seconds=30, progress={},
                                latest_metrics=None).still_owner
        s.commit()
    job = state(sessions, job_id)
    assert job.state == "running" and job.attempt == 2 and job.step == 0


def test_handbacks_are_subtracted_before_attempts_are_counted(env):
    settings, sessions, tenant = env
    job_id = new_job(sessions, tenant, max_attempts=2)
    for _ in range(3):  # three graceful hand-backs (SIGTERM): not the job's fault
        job = claim(sessions, job_id)
        with sessions() as s:
            assert leases.release(session=s, job_id=job_id, worker_id="w", attempt=job.attempt)
            s.commit()
    claim(sessions, job_id, lease=0.001)  # attempt 4, whose worker is then lost: one loss of the two allowed
    repairs = reconcile_once(settings, sessions, Broker(settings).send)
    assert repairs.requeued == [job_id] and repairs.failed == []
    assert state(sessions, job_id).state == "queued"


def test_a_replayed_metric_point_overwrites_instead_of_duplicating(env):
    from datetime import datetime, timezone

    from sqlalchemy import func, select

    from app.core.db.tables import MetricPoint
    from app.core.jobs import metrics

    _, sessions, tenant = env
    job_id = new_job(sessions, tenant)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for value in (1.0, 0.5):  # the same (job, name, step) written by two attempts
        with sessions() as s:
            metrics.write(session=s, tenant_id=tenant, job_id=job_id, points=[metrics.Point("train_loss", 10, 1, value, at)])
            s.commit()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(MetricPoint).where(MetricPoint.job_id == job_id)) == 1
        series = metrics.series(session=s, tenant_id=tenant, job_id=job_id, names=None, since_step=None)
    assert [p["value"] for p in series["train_loss"].points] == [0.5]


def test_cancelling_a_running_job_reaches_its_next_heartbeat(env):
    settings, sessions, tenant = env
    job_id = new_job(sessions, tenant)
    claim(sessions, job_id, "w")
    with sessions() as s:
        assert not leases.heartbeat(session=s, job_id=job_id, worker_id="w", attempt=1, lease_seconds=30, progress={},
                                    latest_metrics=None).cancel_requested
        job = job_service.request_cancel(session=s, store=open_store(settings), tenant_id=tenant, job_id=job_id)
        s.commit()
    assert job.state == "running" and job.cancel_requested  # a running job stops between batches, at its next beat
    assert log.read(open_store(settings), job_id).endswith(" cancel asked for; attempt 1 stops at its worker's next heartbeat\n")
    with sessions() as s:
        assert leases.heartbeat(session=s, job_id=job_id, worker_id="w", attempt=1, lease_seconds=30, progress={},
                                latest_metrics=None).cancel_requested


def test_a_host_whose_clock_runs_ahead_cannot_steal_a_live_job(env, monkeypatch):
    """Leases are kept in the database's time: a worker (or reconciler) on a host lease_seconds ahead
    sees a live lease as live."""
    from app.core.jobs import lease as lease_module
    from app.core.jobs import reconciler as reconciler_module

    settings, sessions, tenant = env
    job_id = new_job(sessions, tenant)
    assert claim(sessions, job_id, "a", lease=30).attempt == 1
    ahead = lambda: utcnow() + timedelta(seconds=120)  # noqa: E731
    for module in (lease_module, reconciler_module):
        if hasattr(module, "utcnow"):
            monkeypatch.setattr(module, "utcnow", ahead)
    assert claim(sessions, job_id, "b") is None
    repairs = reconcile_once(settings, sessions, Broker(settings).send)
    assert job_id not in repairs.requeued + repairs.failed
    assert state(sessions, job_id).worker_id == "a"


def test_a_cancel_requested_job_whose_lease_expired_or_that_was_handed_back_ends_cancelled(env):
    """Claim and re-send both skip a job whose cancel was asked for: back in the queue it would wait for ever."""
    settings, sessions, tenant = env
    lost, handed_back = new_job(sessions, tenant), new_job(sessions, tenant)
    for job_id in (lost, handed_back):
        claim(sessions, job_id)
        with sessions() as s:
            job_service.request_cancel(session=s, store=open_store(settings), tenant_id=tenant, job_id=job_id)
            s.commit()
    expire(sessions, lost)
    repairs = reconcile_once(settings, sessions, Broker(settings).send)
    assert lost not in repairs.to_enqueue
    with sessions() as s:
        assert leases.release(session=s, job_id=handed_back, worker_id="w", attempt=1) == "cancelled"
        s.commit()
    for job_id in (lost, handed_back):
        job = state(sessions, job_id)
        assert job.state == "cancelled" and job.finished_at is not None and job.lease_expires_at is None


def test_more_lost_messages_than_one_statement_may_name_are_all_resent(tmp_path):
    """33,000 queued jobs whose messages are gone, on SQLite's default limit of 32,766 variables a
    statement (this build allows more; set it back): repaired in bounded batches, each its own
    transaction, so every one is re-sent and marked as sent."""
    import sqlite3

    from sqlalchemy import event, insert

    from app.core.ids import new_id

    settings, sessions, tenant = make_env(tmp_path)
    settings = settings.model_copy(update={"requeue_grace_seconds": 60.0})
    engine = sessions.kw["bind"]
    engine.dispose()
    event.listen(engine, "connect", lambda conn, _: conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766))
    rows = [{"id": new_id("job"), "tenant_id": tenant, "name": "j", "kind": "train", "state": "queued", "spec": {},
             "created_at": utcnow(), "enqueued_at": None, "latest_metrics": {}} for _ in range(33_000)]
    with sessions() as s:
        for start in range(0, len(rows), 2000):
            s.execute(insert(Job), rows[start:start + 2000])
        s.commit()
    sent: list[tuple[str, str]] = []

    def send(job_id: str, device: str) -> None:
        sent.append((job_id, device))

    repairs = reconcile_once(settings, sessions, send)  # the broker's queue is read for real; sends are counted
    assert len(repairs.resent) == len(rows) and sorted(sent) == sorted((r["id"], "any") for r in rows)
    assert reconcile_once(settings, sessions, send).resent == []  # each was marked as sent


def test_steps_and_sizes_past_two_to_the_31_are_stored(env):
    """A model over 2 GiB, a job past 2^31 steps: 64-bit columns (PostgreSQL's INTEGER overflowed)."""
    from datetime import datetime, timezone

    from app.core import trained_models
    from app.core.jobs import metrics
    from app.core.model_card import ModelCard, SavedModel

    _, sessions, tenant = env
    job_id = new_job(sessions, tenant)
    claim(sessions, job_id)
    step = 2**31 + 5
    card = ModelCard(architecture="mlp", params={}, input_shape=[64], sample_shape=[8, 8], class_names=["0", "1"], preprocessing={},
                     parameter_count=2**32)
    with sessions() as s:
        assert leases.heartbeat(session=s, job_id=job_id, worker_id="w", attempt=1, lease_seconds=30,
                                progress={"step": step, "total_steps": 2 * step}, latest_metrics=None).still_owner
        metrics.write(session=s, tenant_id=tenant, job_id=job_id, points=[metrics.Point("train_loss", step, 1, 0.1, datetime.now(timezone.utc))])
        trained_models.add(session=s, tenant_id=tenant, job_id=job_id, saved=SavedModel("mdl_big", card, "models/mdl_big", 3 * 2**30))
        s.commit()
    assert state(sessions, job_id).step == step
    with sessions() as s:
        assert trained_models.get(session=s, tenant_id=tenant, model_id="mdl_big").size_bytes == 3 * 2**30


def beat(sessions, job_id, attempt, worker="w", **report):
    with sessions() as s:
        result = leases.heartbeat(session=s, job_id=job_id, worker_id=worker, attempt=attempt, lease_seconds=30, progress={},
                                  latest_metrics=None, report=report)
        s.commit()
    return result


def test_a_job_whose_workers_keep_dying_at_the_same_place_fails_instead_of_taking_down_more(env):
    """An OOM-killed worker looks like any lost worker: two attempts lost in a row after resuming
    from the same checkpoint, neither writing a newer one, and the job fails, naming the step."""
    settings, sessions, tenant = env
    job_id = new_job(sessions, tenant, max_attempts=5)
    send = Broker(settings).send
    for attempt in (1, 2):
        assert claim(sessions, job_id).attempt == attempt
        beat(sessions, job_id, attempt, resumed_from_step=430, last_step=447, peak_memory_bytes=3 * 2**30)
        expire(sessions, job_id)
        repairs = reconcile_once(settings, sessions, send)
        assert (repairs.requeued, repairs.failed) == (([job_id], []) if attempt == 1 else ([], [job_id]))
    job = state(sessions, job_id)
    assert job.state == "failed" and job.error_type == "worker_lost_repeatedly"
    assert "step 430" in job.error_message and "3.2 GB" in job.error_message
    with sessions() as s:
        history = job_service.attempts(session=s, tenant_id=tenant, job_id=job_id)
    assert [(a.attempt, a.outcome, a.last_step, a.peak_memory_bytes) for a in history] == [(1, "lost", 447, 3 * 2**30), (2, "lost", 447, 3 * 2**30)]


def test_a_lost_worker_that_had_made_progress_is_not_counted_as_a_repeat(env):
    settings, sessions, tenant = env
    job_id = new_job(sessions, tenant, max_attempts=5)
    send = Broker(settings).send
    claim(sessions, job_id)
    beat(sessions, job_id, 1, resumed_from_step=None, last_step=60)
    expire(sessions, job_id)
    reconcile_once(settings, sessions, send)
    claim(sessions, job_id)
    beat(sessions, job_id, 2, resumed_from_step=None, last_step=140, checkpoint_step=129)  # it got past a checkpoint
    expire(sessions, job_id)
    assert reconcile_once(settings, sessions, send).requeued == [job_id]
