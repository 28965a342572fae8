"""Tenant quotas against a real database, on both backends: a running-jobs quota holds jobs in the
queue (also when two workers claim at once), a queued-jobs quota refuses submits, and storage
counts datasets, models and checkpoints."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import update

from app.core import quotas, tenants
from app.core.db.tables import Job, Tenant
from app.core.errors import JobQuotaExceeded, StorageQuotaExceeded
from app.core.jobs import lease as leases
from app.core.jobs.outcome import Outcome
from tests.core.test_reconciler import claim, env, make_env, new_job  # noqa: F401 - env is a fixture


def set_quota(sessions, tenant_id, **values):
    with sessions() as s:
        quotas.set_quotas(session=s, tenant=s.get(Tenant, tenant_id), values=values)
        s.commit()


def test_a_running_jobs_quota_leaves_jobs_queued_until_one_ends(env):  # noqa: F811
    _, sessions, tenant = env
    set_quota(sessions, tenant, max_running_jobs=1)
    first, second = new_job(sessions, tenant), new_job(sessions, tenant)
    assert claim(sessions, first, "a") is not None
    assert claim(sessions, second, "b") is None  # held back, not refused
    with sessions() as s:
        assert s.get(Job, second).state == "queued"
        assert leases.next_waiting(session=s, tenant_id=tenant) == (second, "any")
        assert leases.finish(session=s, job_id=first, worker_id="a", attempt=1, outcome=Outcome("succeeded"))
        s.commit()
    assert claim(sessions, second, "b").worker_id == "b"


def test_without_a_quota_nothing_waits(env):  # noqa: F811
    _, sessions, tenant = env
    jobs = [new_job(sessions, tenant) for _ in range(3)]
    assert all(claim(sessions, job_id, f"w{i}") is not None for i, job_id in enumerate(jobs))
    with sessions() as s:
        assert leases.next_waiting(session=s, tenant_id=tenant) is None  # no quota: no one to wake


def test_two_workers_claiming_at_once_respect_the_quota(env):  # noqa: F811
    _, sessions, tenant = env
    set_quota(sessions, tenant, max_running_jobs=1)
    for _ in range(5):
        with sessions() as s:  # the previous round's job ends
            s.execute(update(Job).where(Job.state == "running").values(state="succeeded"))
            s.commit()
        jobs = [new_job(sessions, tenant), new_job(sessions, tenant)]
        start, claimed = threading.Barrier(2), []
        threads = [threading.Thread(target=_claim_together, args=(sessions, job_id, f"w{i}", start, claimed)) for i, job_id in enumerate(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(job is not None for job in claimed) == 1


def _claim_together(sessions, job_id, worker, start, claimed):
    start.wait()
    claimed.append(claim(sessions, job_id, worker))


def test_a_queued_jobs_quota_refuses_the_next_submit(env):  # noqa: F811
    _, sessions, tenant = env
    set_quota(sessions, tenant, max_queued_jobs=2)
    new_job(sessions, tenant)
    running = new_job(sessions, tenant)
    assert claim(sessions, running) is not None  # a running job does not count against the queue
    new_job(sessions, tenant)
    with pytest.raises(JobQuotaExceeded) as refused:
        new_job(sessions, tenant)
    assert refused.value.status_code == 429 and refused.value.code == "quota_exceeded"
    assert "max_queued_jobs" in refused.value.message and "2" in refused.value.message


def test_storage_counts_checkpoints_and_refuses_once_used_up(env):  # noqa: F811
    _, sessions, tenant = env
    job_id = new_job(sessions, tenant)
    with sessions() as s:
        s.execute(update(Job).where(Job.id == job_id).values(checkpoint_bytes=5000))
        s.commit()
        assert quotas.usage(session=s, tenant_id=tenant).storage.checkpoints == 5000
    set_quota(sessions, tenant, max_storage_bytes=5000)
    with pytest.raises(StorageQuotaExceeded) as refused:
        new_job(sessions, tenant)
    assert refused.value.status_code == 413 and "max_storage_bytes" in refused.value.message
    set_quota(sessions, tenant, max_storage_bytes=None)
    new_job(sessions, tenant)


def test_quotas_are_written_as_operators_write_them():
    assert quotas.parse_quota("max_storage_bytes", "50G") == 50 * 10**9
    assert quotas.parse_quota("max_storage_bytes", "512MiB") == 512 * 2**20
    assert quotas.parse_quota("max_running_jobs", "2") == 2
    assert quotas.parse_quota("max_queued_jobs", "none") is None
    for name, raw in (("max_running_jobs", "two"), ("max_storage_bytes", "lots"), ("max_queued_jobs", "-1")):
        with pytest.raises(Exception, match=name):
            quotas.parse_quota(name, raw)


def test_a_tenant_sees_only_its_own_usage(tmp_path):
    settings, sessions, tenant = make_env(tmp_path)
    with sessions() as s:
        other = tenants.get_or_create_tenant(session=s, name="other").id
        s.commit()
    new_job(sessions, other)
    with sessions() as s:
        assert quotas.usage(session=s, tenant_id=tenant).jobs == {}
        assert quotas.usage(session=s, tenant_id=other).jobs == {"queued": 1}
