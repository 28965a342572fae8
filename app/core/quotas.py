"""Tenant quotas, set by the operator (``kiln tenants set-quota``), and what a tenant uses against them.

- ``max_queued_jobs``: a submit past it is refused (429 ``quota_exceeded``);
- ``max_running_jobs``: a claim past it leaves the job queued (``lease.claim``), nothing is refused;
- ``max_storage_bytes``: datasets, models and checkpoints together; an upload or a submit once it
  is used up is refused (413 ``quota_exceeded``). A job that is running may go past it; the next
  submit is refused.
- ``max_priority``: the highest ``priority`` a job of the tenant may ask for (0..10); above it a
  submit is refused (403 ``forbidden``).

A null quota is no limit. Checks lock the tenant's row (on PostgreSQL), so two submits at once are
counted one after the other; SQLite writers take turns anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ByteSize, TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.db.tables import Dataset, Job, Tenant, TrainedModel
from app.core.errors import Forbidden, InvalidInput, JobQuotaExceeded, NotFound, StorageQuotaExceeded, detail

QUOTAS = ("max_running_jobs", "max_queued_jobs", "max_storage_bytes", "max_priority")
MAX_PRIORITY = 10


@dataclass(frozen=True)
class Storage:
    datasets: int
    models: int
    checkpoints: int

    @property
    def total(self) -> int:
        return self.datasets + self.models + self.checkpoints


@dataclass(frozen=True)
class Usage:
    jobs: dict[str, int]  # by state, every kind
    storage: Storage
    quotas: dict[str, int | None]


def storage(session: Session, tenant_id: str) -> Storage:
    def total(column, where) -> int:
        return int(session.scalar(select(func.coalesce(func.sum(column), 0)).where(where)))

    return Storage(
        datasets=total(Dataset.size_bytes, Dataset.tenant_id == tenant_id),
        models=total(TrainedModel.size_bytes, TrainedModel.tenant_id == tenant_id),
        checkpoints=total(Job.checkpoint_bytes, Job.tenant_id == tenant_id),
    )


def jobs_by_state(session: Session, tenant_id: str) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).where(Job.tenant_id == tenant_id).group_by(Job.state))
    return {state: int(n) for state, n in rows}


def quotas_of(tenant: Tenant) -> dict[str, int | None]:
    return {name: getattr(tenant, name) for name in QUOTAS}


def usage(*, session: Session, tenant_id: str) -> Usage:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    return Usage(jobs=jobs_by_state(session, tenant_id), storage=storage(session, tenant_id), quotas=quotas_of(tenant))


def _locked_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
    if tenant is None:
        raise NotFound("no such tenant")
    return tenant


def check_can_queue(*, session: Session, tenant_id: str, priority: int = 0) -> None:
    """Before a job is queued: a priority the tenant may ask for, under the queued-jobs quota, and
    storage left for what it will write."""
    tenant = _locked_tenant(session, tenant_id)
    if tenant.max_priority is not None and priority > tenant.max_priority:
        raise Forbidden(f"priority {priority} is above tenant {tenant.name!r}'s max_priority of {tenant.max_priority}: "
                        f"the operator sets it (kiln tenants set-quota --max-priority)", [detail(["body", "priority"], "above max_priority")])
    if tenant.max_queued_jobs is not None:
        queued = session.scalar(select(func.count()).where(Job.tenant_id == tenant_id, Job.state == "queued"))
        if queued >= tenant.max_queued_jobs:
            raise JobQuotaExceeded(f"tenant {tenant.name!r} has {queued} queued jobs, its quota (max_queued_jobs) is "
                                   f"{tenant.max_queued_jobs}: wait for some to start, or cancel some")
    check_storage(session=session, tenant_id=tenant_id, tenant=tenant)


def check_storage(*, session: Session, tenant_id: str, adding: int = 0, tenant: Tenant | None = None, lock: bool = True) -> None:
    """Refuses once the tenant's storage is used up, or would be by ``adding`` bytes more. With
    ``lock=False`` it only reads (a read-only session's early check, before a long upload is converted)."""
    if tenant is None:
        tenant = _locked_tenant(session, tenant_id) if lock else session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    quota = tenant.max_storage_bytes
    if quota is None:
        return
    used = storage(session, tenant_id).total
    if used + adding > quota or used >= quota:
        what = f"{used:,} bytes used" + (f" and {adding:,} more" if adding else "")
        raise StorageQuotaExceeded(f"tenant {tenant.name!r} has {what}, over its quota (max_storage_bytes) of {quota:,} bytes: "
                                   f"delete datasets to make room")


def parse_quota(name: str, raw: str) -> int | None:
    """A quota as the operator writes it: a count, bytes with a unit for storage (50G, 512MiB), or
    ``none`` for no limit."""
    if raw.strip().lower() in {"none", "unlimited"}:
        return None
    try:
        value = int(TypeAdapter(ByteSize).validate_python(raw)) if name == "max_storage_bytes" else int(raw)
    except (ValueError, ValidationError):
        raise InvalidInput(f"{name} must be {'bytes (50G, 512MiB)' if name == 'max_storage_bytes' else 'a count'} "
                           f"or 'none', not {raw!r}") from None
    if value < 0:
        raise InvalidInput(f"{name} cannot be negative")
    if name == "max_priority" and value > MAX_PRIORITY:
        raise InvalidInput(f"max_priority is at most {MAX_PRIORITY}, the highest priority there is")
    return value


def set_quotas(*, session: Session, tenant: Tenant, values: dict[str, int | None]) -> Tenant:
    for name, value in values.items():
        if name not in QUOTAS:
            raise InvalidInput(f"unknown quota {name!r}; quotas are {', '.join(QUOTAS)}")
        setattr(tenant, name, value)
    session.flush()
    return tenant
