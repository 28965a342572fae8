"""The database-backed context and one attempt, against a real (SQLite) database built by the
migrations: an attempt that lost its lease writes nothing, anywhere; one whose database stops
answering stops; the lease stays renewed until the outcome is committed."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from app.api.broker import Broker
from app.core import bootstrap, tenants
from app.core.artifacts import layout
from app.core.artifacts.configured import open_store
from app.core.db.engine import session_factory
from app.core.db.tables import Job, TrainedModel
from app.core.db.types import utcnow
from app.core.jobs import lease, reconciler
from app.core.jobs import metrics as metric_service
from app.core.jobs import service as job_service
from app.core.jobs.spec import JobSpec
from app.core.settings import Settings
from worker.attempt import run_attempt
from worker.job_context import JobContext

SPEC = JobSpec.model_validate({"name": "j", "model": {"architecture": "mlp", "params": {"hidden_sizes": [16]}},
                               "data": {"dataset": "builtin:digits"}, "training": {"epochs": 1}})


@pytest.fixture
def env(tmp_path):
    settings = Settings(data_dir=tmp_path, lease_seconds=1.0, heartbeat_seconds=0.1, requeue_grace_seconds=0, run_reconciler=False)
    bootstrap.prepare(settings)
    sessions = session_factory(settings.database_url)
    with sessions() as s:
        tenant = tenants.get_or_create_tenant(session=s, name="t")
        job = job_service.create(session=s, tenant_id=tenant.id, spec=SPEC, max_attempts=3)
        s.commit()
    return settings, sessions, open_store(settings), tenant.id, job.id


def claim(sessions, job_id, worker):
    with sessions() as s:
        job = lease.claim(session=s, job_id=job_id, worker_id=worker, lease_seconds=30)
        s.commit()
    return job


def test_an_attempt_that_lost_its_lease_writes_no_metric_and_no_checkpoint(env):
    settings, sessions, store, tenant, job_id = env
    old = claim(sessions, job_id, "w")
    ctx = JobContext(settings=settings, sessions=sessions, store=store, job_id=job_id, tenant_id=tenant, worker_id="w", attempt=old.attempt)
    with sessions() as s:  # the lease expires and another worker takes the job
        s.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    assert claim(sessions, job_id, "v").attempt == 2

    ctx.report({"train_loss": 0.5}, step=10, epoch=1)
    ctx.save_checkpoint({"model": {}}, epoch=1, step=10, metrics={"val_loss": 0.1})
    assert ctx.stop_reason() == "lease_lost"
    assert store.list(layout.checkpoints_prefix(job_id)) == []
    assert ctx.beat()
    with sessions() as s:
        assert metric_service.series(session=s, tenant_id=tenant, job_id=job_id, names=None, since_step=None) == {}
        assert s.get(Job, job_id).step == 0


def test_heartbeats_that_keep_failing_past_the_lease_stop_the_trainer(env, monkeypatch):
    settings, sessions, store, tenant, job_id = env
    job = claim(sessions, job_id, "w")
    ctx = JobContext(settings=settings, sessions=sessions, store=store, job_id=job_id, tenant_id=tenant, worker_id="w", attempt=job.attempt)
    ctx.start()
    try:
        def down(**_):
            raise OperationalError("SELECT 1", {}, Exception("the database is restarting"))

        monkeypatch.setattr(lease, "heartbeat", down)
        deadline = time.monotonic() + 5
        while ctx.stop_reason() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ctx.stop_reason() == "lease_lost"
    finally:
        monkeypatch.undo()
        ctx.close()


def test_the_lease_stays_renewed_while_the_outcome_waits_for_the_database(env, monkeypatch):
    """The outcome's write fails for longer than the lease (a database in trouble at the end of the
    job); a reconciler runs meanwhile. The job is not requeued, and ends succeeded with its model."""
    settings, sessions, store, tenant, job_id = env
    real_finish, failures = lease.finish, []

    def finish_after_three_failures(**kwargs):
        if len(failures) < 3:  # with_retries waits 0.5 + 1 + 2 s: over three leases
            failures.append(time.monotonic())
            raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
        return real_finish(**kwargs)

    monkeypatch.setattr(lease, "finish", finish_after_three_failures)
    repairs, stop = [], threading.Event()

    def reconcile():
        while not stop.wait(0.2):
            repairs.append(reconciler.reconcile_once(settings, sessions, Broker(settings).send))

    thread = threading.Thread(target=reconcile)
    thread.start()
    try:
        assert run_attempt(job_id, settings, Broker(settings).send) == "succeeded"
    finally:
        stop.set()
        thread.join()
    assert len(failures) == 3 and repairs
    assert not any(job_id in r.requeued + r.failed for r in repairs)
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.state == "succeeded" and job.attempt == 1 and s.get(TrainedModel, job.model_id) is not None


def test_a_running_job_shows_its_eta_from_the_pace_its_worker_sees(env, monkeypatch):
    """The API's eta_seconds comes from the steps a second the worker measured over the last minute."""
    from app.api.jobs import JobOut
    from worker import job_context

    settings, sessions, store, tenant, job_id = env
    job = claim(sessions, job_id, "w")
    ctx = JobContext(settings=settings, sessions=sessions, store=store, job_id=job_id, tenant_id=tenant, worker_id="w", attempt=job.attempt)
    clock = [1000.0]
    monkeypatch.setattr(job_context.time, "monotonic", lambda: clock[0])
    ctx.set_progress(epoch=0, step=0, total_steps=1000)
    assert ctx.beat()
    with sessions() as s:
        assert JobOut.of(s.get(Job, job_id)).progress.eta_seconds is None  # no pace yet
    for step in range(10, 210, 10):  # a slow start (5 s per 10 steps to step 60), then 0.5 s per 10 steps
        clock[0] += 5.0 if step <= 60 else 0.5
        ctx.set_progress(epoch=0, step=step, total_steps=1000)
    clock[0] += 30  # an evaluation: step 260 at t=1067
    ctx.set_progress(epoch=0, step=260, total_steps=1000)
    assert ctx.beat()
    with sessions() as s:
        progress = JobOut.of(s.get(Job, job_id)).progress
    pace = (260 - 20) / (1067 - 1010)  # over the last minute: from step 20 at t=1010 (step 10 at t=1005 is older)
    assert progress.eta_seconds == pytest.approx(round((1000 - 260) / pace, 1))
    assert progress.elapsed_seconds is not None and progress.elapsed_seconds >= 0
