"""Who runs next. A message only says "there is work"; a free worker claims the claimable job for
its device that comes first by:

1. ``priority``, highest first (-10..10; above 0 as far as the tenant's ``max_priority`` allows),
2. the tenant with the fewest running jobs (fair share),
3. the tenant that started a job least recently (with one worker, tenants take turns),
4. the oldest job.

Claimable: queued, no cancel asked, a device the worker serves, its tenant under its
``max_running_jobs``. Only each tenant's own next job can win (the fair-share keys are its
tenant's), so the claim reads one job per tenant through an index, not the whole queue: its cost
grows with the number of tenants, not of jobs. On PostgreSQL the first candidate no other worker
is claiming is locked ``FOR UPDATE SKIP LOCKED``, then its tenant's row before the tenant's running
jobs are counted again (``lease.claim``), so two claims at once cannot both take a tenant's last slot; on SQLite the
claim is one write transaction (``BEGIN IMMEDIATE``), which already serialises them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.core import workers
from app.core.db.tables import Job, Tenant
from app.core.jobs import lease
from app.core.queue import DEVICES

TRIES = 20  # candidates taken by other workers or held by a quota meanwhile, before giving up for this message


def _running_per_tenant():
    return select(Job.tenant_id, func.count().label("running")).where(Job.state == "running").group_by(Job.tenant_id).subquery()


def devices_served(device: str, take_any: bool) -> list[str]:
    return [device, "any"] if take_any else [device]


def claim_next(*, session: Session, worker_id: str, device: str, lease_seconds: float, take_any: bool = True) -> Job | None:
    """Claims the job this worker should run now; None if there is nothing it may run."""
    passed_over: set[str] = set()
    for _ in range(TRIES):
        candidates = [c for c in _candidates(session, devices_served(device, take_any)) if c.tenant_id not in passed_over]
        if not candidates:
            return None
        best = candidates[0]
        if session.get_bind().dialect.name == "postgresql":
            # Lock the first candidate no other worker is claiming this instant, rather than wait
            # for one (rows are only ever locked job first, tenant second: no deadlock).
            order = case({c.id: i for i, c in enumerate(candidates)}, value=Job.id)
            free = session.scalar(select(Job.id).where(Job.id.in_([c.id for c in candidates]), Job.state == "queued")
                                  .order_by(order).limit(1).with_for_update(skip_locked=True))
            if free is None:  # each is being claimed: their claimers commit in milliseconds
                time.sleep(0.005)
                continue
            best = next(c for c in candidates if c.id == free)
        job = lease.claim(session=session, job_id=best.id, worker_id=worker_id, lease_seconds=lease_seconds)
        if job is not None:
            return job
        if session.scalar(select(Job.state).where(Job.id == best.id)) == "queued":
            passed_over.add(best.tenant_id)  # still queued: its tenant filled its last slot meanwhile
        # else another worker took it: read the candidates again
    return None


@dataclass(frozen=True)
class _Candidate:
    id: str
    tenant_id: str


def _candidates(session: Session, devices: list[str]) -> list[_Candidate]:
    """Each tenant's next job (its highest priority, then oldest), in the claim's order. Within a
    tenant the fair-share keys are equal, so its next job is the only one of its jobs that can win:
    one index probe per tenant, whatever the length of the queue, and a sort of one row per tenant."""
    waiting = (Job.tenant_id == Tenant.id, Job.state == "queued", Job.cancel_requested.is_(False), Job.device.in_(devices))
    # Its top priority, then its oldest job at that priority: both walk the index (tenant, state, priority, created).
    top = select(func.max(Job.priority)).where(*waiting).correlate(Tenant).scalar_subquery()
    next_of_tenant = (select(Job.id).where(*waiting, Job.priority == top).order_by(Job.created_at, Job.id).limit(1)
                      .correlate(Tenant).scalar_subquery())
    heads = {job_id: (tenant_id, last, quota) for tenant_id, job_id, last, quota in session.execute(
        select(Tenant.id, next_of_tenant, Tenant.last_started_at, Tenant.max_running_jobs)).all() if job_id}
    if not heads:
        return []
    tenant_ids = [tenant_id for tenant_id, _, _ in heads.values()]
    running = dict(session.execute(select(Job.tenant_id, func.count()).where(Job.state == "running", Job.tenant_id.in_(tenant_ids))
                                   .group_by(Job.tenant_id)).all())
    ranked = []
    for job_id, priority, created_at in session.execute(select(Job.id, Job.priority, Job.created_at).where(Job.id.in_(list(heads)))):
        tenant_id, last, quota = heads[job_id]
        n = running.get(tenant_id, 0)
        if quota is None or n < quota:
            # priority (highest), running jobs (fewest), last start (never, then longest ago), age
            ranked.append(((-priority, n, last is not None, last or created_at, created_at, job_id), _Candidate(job_id, tenant_id)))
    return [candidate for _, candidate in sorted(ranked, key=lambda r: r[0])]


# -- what a queued job waits for ---------------------------------------------------------------------


def devices_for(job_device: str) -> list[str]:
    """The worker devices that may run a job asking for ``job_device``."""
    return list(DEVICES) if job_device == "any" else [job_device]


def queue_position(*, session: Session, job: Job) -> int | None:
    """How many jobs free workers would start before this queued one, were the queue to stand
    still (no new submits, no job ending); None unless it is queued.

    Not a count of older jobs: under fair share a tenant's first job overtakes another tenant's
    fortieth. Jobs of higher priority all come first. Among jobs of its priority the claim takes
    from the tenant with the fewest running jobs, ties to the tenant that started least recently:
    tenants take turns level by level, where a tenant's level is its running jobs plus those
    started since. This job starts when its tenant reaches level ``r + k`` (``r`` running, ``k`` of
    its jobs ahead of it); every other tenant starts each of its jobs below that level first, and
    the one at that level if it wins the tie (it was there first: a higher running count, or the
    same count and an earlier last start). A tenant at its running-jobs quota starts nothing more.
    """
    if job.state != "queued":
        return None
    devices = sorted({*devices_for(job.device), "any"})
    waiting = (Job.state == "queued", Job.cancel_requested.is_(False), Job.device.in_(devices))
    higher = session.scalar(select(func.count()).where(*waiting, Job.priority > job.priority))
    older = or_(Job.created_at < job.created_at, and_(Job.created_at == job.created_at, Job.id < job.id))
    mine_ahead = session.scalar(select(func.count()).where(*waiting, Job.priority == job.priority, Job.tenant_id == job.tenant_id, older))
    running = _running_per_tenant()
    rows = session.execute(
        select(Job.tenant_id, func.count(), func.min(Job.created_at), func.coalesce(func.max(running.c.running), 0),
               func.max(Tenant.last_started_at), func.max(Tenant.max_running_jobs))
        .join(Tenant, Tenant.id == Job.tenant_id).outerjoin(running, running.c.tenant_id == Job.tenant_id)
        .where(*waiting, Job.priority == job.priority).group_by(Job.tenant_id)
    ).all()
    tenants = {tenant: (n, first, r, last, quota) for tenant, n, first, r, last, quota in rows}
    mine = tenants.pop(job.tenant_id, None)
    if mine is None:  # claimed (or cancelled) between reading the job and this query: it waits no more
        return None
    _, my_first, my_running, my_last, _ = mine
    level = my_running + mine_ahead
    ahead = higher + mine_ahead
    for n, first, r, last, quota in tenants.values():
        if quota is not None:
            n = min(n, max(0, quota - r))
        ahead += min(max(level - r, 0), n)
        first_there = r > my_running or (r == my_running and _earlier((last, first), (my_last, my_first)))
        if r <= level < r + n and first_there:
            ahead += 1
    return ahead


def _earlier(theirs: tuple, mine: tuple) -> bool:
    """The claim's tie order between two tenants: the last start, never first; then the oldest job."""
    (their_last, their_first), (my_last, my_first) = theirs, mine
    if their_last != my_last:
        return their_last is None or (my_last is not None and their_last < my_last)
    return their_first < my_first


def waiting_for(*, session: Session, job: Job, alive_seconds: float) -> str | None:
    """What a queued job waits for, in words; None unless it is queued."""
    if job.state != "queued":
        return None
    alive = workers.alive(session=session, alive_seconds=alive_seconds)
    wanted = devices_for(job.device)
    if not any(alive.get(d, {}).get("workers") for d in wanted):
        return "a cuda worker" if job.device == "cuda" else ("a cpu worker" if job.device == "cpu" else "a worker")
    quota = session.scalar(select(Tenant.max_running_jobs).where(Tenant.id == job.tenant_id))
    if quota is not None:
        running = session.scalar(select(func.count()).where(Job.tenant_id == job.tenant_id, Job.state == "running"))
        if running >= quota:
            return f"one of its tenant's {running} running jobs to end (max_running_jobs {quota})"
    return "a free worker"


@dataclass(frozen=True)
class DeviceQueue:
    device: str
    queued: int  # claimable by such a worker (jobs for "any" count under every device)
    running: int  # on such workers
    workers: int  # alive
    busy_workers: int


def overview(*, session: Session, alive_seconds: float) -> list[DeviceQueue]:
    alive = workers.alive(session=session, alive_seconds=alive_seconds)
    queued = dict(session.execute(select(Job.device, func.count()).where(Job.state == "queued", Job.cancel_requested.is_(False))
                                  .group_by(Job.device)).all())
    running = workers.running_by_device(session=session)
    return [DeviceQueue(d, queued.get(d, 0) + queued.get("any", 0), running.get(d, 0), alive.get(d, {}).get("workers", 0),
                        alive.get(d, {}).get("busy", 0)) for d in DEVICES]


def tenant_jobs(*, session: Session, tenant_id: str) -> tuple[int, int]:
    """(queued, running) jobs of the tenant."""
    counts = dict(session.execute(select(Job.state, func.count()).where(Job.tenant_id == tenant_id, Job.state.in_(("queued", "running")))
                                  .group_by(Job.state)).all())
    return counts.get("queued", 0), counts.get("running", 0)
