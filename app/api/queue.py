"""The queue as a tenant may see it: per device, jobs waiting and running and workers alive; the
caller's own jobs beside. No other tenant's job is named."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import ReadCaller, ReadSessionDep, SettingsDep
from app.api.errors import errors
from app.core.jobs import scheduling


class DeviceQueueOut(BaseModel):
    device: str
    queued: int = Field(description="jobs a worker of this device may start (jobs for any device count under each)")
    running: int = Field(description="jobs running on workers of this device")
    workers: int = Field(description="workers alive (seen within KILN_WORKER_ALIVE_SECONDS)")
    busy_workers: int


class YoursOut(BaseModel):
    queued: int
    running: int


class QueueOut(BaseModel):
    devices: list[DeviceQueueOut]
    yours: YoursOut = Field(description="the caller's tenant's jobs, of every kind")


router = APIRouter(prefix="/v1/queue", tags=["queue"])


@router.get("", response_model=QueueOut, operation_id="getQueue", responses=errors())
def get_queue(caller: ReadCaller, session: ReadSessionDep, settings: SettingsDep):
    devices = scheduling.overview(session=session, alive_seconds=settings.worker_alive_seconds)
    queued, running = scheduling.tenant_jobs(session=session, tenant_id=caller.tenant_id)
    return QueueOut(devices=[DeviceQueueOut(**vars(d)) for d in devices], yours=YoursOut(queued=queued, running=running))
