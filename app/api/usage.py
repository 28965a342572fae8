"""What a tenant uses against its quotas: jobs by state, storage by kind, each quota (null: none)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import ReadCaller, ReadSessionDep
from app.api.errors import errors
from app.core import quotas


class StorageOut(BaseModel):
    datasets_bytes: int
    models_bytes: int
    checkpoints_bytes: int
    total_bytes: int


class QuotasOut(BaseModel):
    max_running_jobs: int | None = Field(description="more jobs than this wait in the queue")
    max_queued_jobs: int | None = Field(description="a submit past this is refused (429 quota_exceeded)")
    max_storage_bytes: int | None = Field(description="datasets, models and checkpoints together; uploads and submits past it are refused (413)")
    max_priority: int | None = Field(description="the highest job priority this tenant may ask for (null: 10)")


class UsageOut(BaseModel):
    jobs: dict[str, int] = Field(description="jobs (training and batch inference) by state")
    storage: StorageOut
    quotas: QuotasOut


router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get("", response_model=UsageOut, operation_id="getUsage", responses=errors())
def get_usage(caller: ReadCaller, session: ReadSessionDep):
    usage = quotas.usage(session=session, tenant_id=caller.tenant_id)
    jobs = {state: usage.jobs.get(state, 0) for state in ("queued", "running", "succeeded", "failed", "cancelled")}
    s = usage.storage
    return UsageOut(jobs=jobs, storage=StorageOut(datasets_bytes=s.datasets, models_bytes=s.models, checkpoints_bytes=s.checkpoints,
                                                  total_bytes=s.total), quotas=QuotasOut(**usage.quotas))
