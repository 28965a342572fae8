"""Who runs next, on both databases: priority, then fair share between tenants, then age; a worker
takes only the devices it serves; quotas hold; two workers never take one job; and a queued job's
position says truly how many jobs start before it."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import update

from app.core import tenants as tenant_service
from app.core import workers
from app.core.db.tables import Job
from app.core.errors import Forbidden
from app.core.jobs import lease, scheduling
from app.core.jobs import service as job_service
from app.core.jobs.outcome import Outcome
from app.core.jobs.spec import JobSpec
from tests.core.test_quotas import set_quota
from tests.core.test_reconciler import SPEC, env  # noqa: F401 - env is a fixture


def tenant(sessions, name: str) -> str:
    with sessions() as s:
        t = tenant_service.get_or_create_tenant(session=s, name=name)
        s.commit()
        return t.id


def submit(sessions, tenant_id: str, priority: int = 0, device: str = "any") -> str:
    spec = JobSpec.model_validate({**SPEC.model_dump(), "priority": priority, "resources": {"device": device}})
    with sessions() as s:
        job = job_service.create(session=s, tenant_id=tenant_id, spec=spec, max_attempts=3)
        s.commit()
        return job.id


def claim_next(sessions, worker: str = "w", device: str = "cpu", take_any: bool = True) -> str | None:
    time.sleep(0.003)  # SQLite's clock has milliseconds: each claim's start is its own moment
    with sessions() as s:
        job = scheduling.claim_next(session=s, worker_id=worker, device=device, lease_seconds=30, take_any=take_any)
        s.commit()
        return job.id if job else None


def finish(sessions, job_id: str) -> None:
    with sessions() as s:
        job = s.get(Job, job_id)
        assert lease.finish(session=s, job_id=job_id, worker_id=job.worker_id, attempt=job.attempt, outcome=Outcome("succeeded"))
        s.commit()


def test_the_highest_priority_runs_first_then_the_oldest(env):  # noqa: F811
    _, sessions, t = env
    old, low, high = submit(sessions, t), submit(sessions, t, priority=-3), submit(sessions, t, priority=5)
    assert [claim_next(sessions) for _ in range(4)] == [high, old, low, None]


def test_with_one_worker_tenants_take_turns(env):  # noqa: F811
    _, sessions, a = env
    b = tenant(sessions, "b")
    a_jobs = [submit(sessions, a) for _ in range(4)]
    b_jobs = [submit(sessions, b) for _ in range(2)]
    order = []
    while (job_id := claim_next(sessions)) is not None:
        order.append(job_id)
        finish(sessions, job_id)
    assert order == [a_jobs[0], b_jobs[0], a_jobs[1], b_jobs[1], a_jobs[2], a_jobs[3]]


def test_the_tenant_with_fewest_running_jobs_goes_first(env):  # noqa: F811
    _, sessions, a = env
    b = tenant(sessions, "b")
    a_jobs = [submit(sessions, a) for _ in range(3)]
    assert claim_next(sessions, "w1") == a_jobs[0]
    b_job = submit(sessions, b)  # newer than all of a's
    assert claim_next(sessions, "w2") == b_job  # a runs one, b none


def test_a_worker_takes_only_the_devices_it_serves(env):  # noqa: F811
    _, sessions, t = env
    cuda, anywhere, cpu = submit(sessions, t, device="cuda"), submit(sessions, t), submit(sessions, t, device="cpu")
    assert claim_next(sessions, "cpu-1", "cpu", take_any=False) == cpu  # an idle GPU should take the "any" job
    assert claim_next(sessions, "cpu-1", "cpu", take_any=False) is None
    assert claim_next(sessions, "gpu-1", "cuda") == cuda
    assert claim_next(sessions, "cpu-2", "cpu") == anywhere


def test_the_running_jobs_quota_holds_in_the_claim(env):  # noqa: F811
    _, sessions, a = env
    b = tenant(sessions, "b")
    set_quota(sessions, a, max_running_jobs=1)
    a_jobs = [submit(sessions, a, priority=3) for _ in range(2)]
    b_job = submit(sessions, b)
    assert claim_next(sessions, "w1") == a_jobs[0]
    assert claim_next(sessions, "w2") == b_job  # a's higher priority waits on its quota
    assert claim_next(sessions, "w3") is None
    finish(sessions, a_jobs[0])
    assert claim_next(sessions, "w3") == a_jobs[1]


def test_workers_claiming_at_once_never_take_one_job(env):  # noqa: F811
    _, sessions, a = env
    b = tenant(sessions, "b")
    jobs = {submit(sessions, t) for t in (a, b) for _ in range(6)}
    start, claimed = threading.Barrier(4), []

    def work(name):
        start.wait()
        for _ in range(3):
            claimed.append(claim_next(sessions, name))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(jobs)


def test_a_queued_jobs_position_is_how_many_start_before_it(env):  # noqa: F811
    _, sessions, a = env
    b, c, d = tenant(sessions, "b"), tenant(sessions, "c"), tenant(sessions, "d")
    set_quota(sessions, d, max_running_jobs=1)
    queued = [submit(sessions, a) for _ in range(6)]
    assert claim_next(sessions) == queued.pop(0)  # a runs one
    queued += [submit(sessions, b) for _ in range(2)] + [submit(sessions, c, priority=1)] + [submit(sessions, d) for _ in range(3)]
    queued += [submit(sessions, a, device="cuda")]  # no cpu worker takes it
    with sessions() as s:
        predicted = {job_id: scheduling.queue_position(session=s, job=s.get(Job, job_id)) for job_id in queued}
    order = []
    while (job_id := claim_next(sessions)) is not None:
        order.append(job_id)
    cpu_jobs = [j for j in queued if j != queued[-1]]
    assert {j: order.index(j) for j in order} == {j: predicted[j] for j in cpu_jobs if j in order}
    assert predicted[order[0]] == 0 and order[0] == queued[7]  # c's priority first
    assert len(order) == len(cpu_jobs) - 2  # d's quota held two back
    assert predicted[queued[5]] == 1  # b's first job overtakes a's five


def test_waiting_for_says_what_a_queued_job_waits_for(env):  # noqa: F811
    settings, sessions, t = env
    set_quota(sessions, t, max_running_jobs=1)
    job_id = submit(sessions, t, device="cuda")

    def waits(job):
        with sessions() as s:
            return scheduling.waiting_for(session=s, job=s.get(Job, job), alive_seconds=30)

    assert waits(job_id) == "a cuda worker"
    with sessions() as s:
        workers.beat(session=s, worker_id="gpu-1", device="cuda")
        s.commit()
    assert waits(job_id) == "a free worker"
    other = submit(sessions, t, device="cuda")
    assert claim_next(sessions, "gpu-1", "cuda") == job_id
    assert waits(other) == "one of its tenant's 1 running jobs to end (max_running_jobs 1)"
    with sessions() as s:
        s.execute(update(Job).where(Job.id == job_id).values(state="succeeded"))
        s.commit()
    assert waits(other) == "a free worker"


def test_priority_above_the_tenants_max_is_refused(env):  # noqa: F811
    _, sessions, t = env
    set_quota(sessions, t, max_priority=2)
    submit(sessions, t, priority=2)
    with pytest.raises(Forbidden, match="priority 5 is above tenant 't''s max_priority of 2"):
        submit(sessions, t, priority=5)


def test_a_job_claimed_while_its_place_is_read_has_no_place_and_no_error(env):  # noqa: F811
    # GET /v1/jobs/{id} reads the job, then the queue: a worker may claim it in between. Seen on
    # PostgreSQL as a 500 (the job's tenant was no longer in the queue it read).
    _, sessions, t = env
    job_id = submit(sessions, t)
    with sessions() as s:
        stale = _as_read(s.get(Job, job_id), "queued")  # what the API read first
    assert claim_next(sessions) == job_id  # then a worker claims it
    with sessions() as s:  # and the API's next statement sees the claim (read committed)
        assert scheduling.queue_position(session=s, job=stale) is None
        assert job_service.place_in_queue(session=s, job=stale, alive_seconds=30) is None


def _as_read(job: Job, state: str) -> Job:
    """The job as the API had read it a moment before (its row now says otherwise)."""
    copy = Job(**{c.name: getattr(job, c.name) for c in Job.__table__.columns})
    copy.state = state
    return copy
