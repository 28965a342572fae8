"""Training jobs over REST. Thin: parse, call a service, shape the answer."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse

from app.artifacts import ArtifactStore, job_prefix
from app.deps import CallerDep, SessionDep, SettingsDep
from app.jobspec import JobSpec
from app.queue import wake_worker
from app.schemas import JobList, JobOut, JobState, MetricsOut
from app.services import jobs as job_service
from app.services import metrics as metric_service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
log = logging.getLogger("kiln.api")


@router.post("", status_code=201, response_model=JobOut)
def submit_job(spec: JobSpec, caller: CallerDep, session: SessionDep, settings: SettingsDep, request: Request, response: Response):
    job = job_service.create(session=session, tenant_id=caller.tenant_id, spec=spec, max_attempts=settings.max_attempts)
    session.commit()
    wake_worker(settings, job.id)
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id))
    return JobOut.of(job)


@router.get("", response_model=JobList)
def list_jobs(
    caller: CallerDep, session: SessionDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
):
    page = job_service.list_jobs(session=session, tenant_id=caller.tenant_id, state=state, limit=limit, cursor=cursor)
    return JobList(items=[JobOut.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, caller: CallerDep, session: SessionDep):
    return JobOut.of(job_service.get(session=session, tenant_id=caller.tenant_id, job_id=job_id))


@router.get("/{job_id}/metrics", response_model=MetricsOut)
def get_metrics(
    job_id: str, caller: CallerDep, session: SessionDep,
    names: Annotated[list[str] | None, Query(description="metric names; repeat or comma-separate")] = None,
    since_step: Annotated[int | None, Query(ge=0)] = None,
):
    wanted = [n for part in names for n in part.split(",") if n] if names else None
    series = metric_service.series(session=session, tenant_id=caller.tenant_id, job_id=job_id, names=wanted, since_step=since_step)
    return MetricsOut(job_id=job_id, series=series)


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, caller: CallerDep, session: SessionDep):
    job = job_service.request_cancel(session=session, tenant_id=caller.tenant_id, job_id=job_id)
    session.commit()
    return JobOut.of(job)


@router.get("/{job_id}/logs", response_class=PlainTextResponse)
def get_logs(job_id: str, caller: CallerDep, session: SessionDep, settings: SettingsDep):
    job_service.get(session=session, tenant_id=caller.tenant_id, job_id=job_id)
    path = ArtifactStore(settings.artifacts_dir).path(f"{job_prefix(job_id)}/log.txt")
    return PlainTextResponse(path.read_text(encoding="utf-8") if path.exists() else "")
