"""Training jobs over REST: submit, list, read, metrics, cancel, logs. Thin: parse, call a service, shape the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from app.api import job_events
from app.api.common import ErrorInfo, JobState, PageOut, error_of, finite, fraction_done
from app.api.deps import BrokerDep, PageDep, ReadCaller, ReadSessionDep, SessionDep, SettingsDep, StoreDep, SubmitCaller, TrainCaller
from app.api.errors import errors
from app.api.idempotency import IdempotencyKeyHeader, Once
from app.api.models import ModelOut
from app.core import idempotency
from app.core.db.engine import read_only
from app.core.db.tables import Job
from app.core.db.types import utcnow
from app.core.errors import over_limit
from app.core.jobs import metrics as metric_service
from app.core.jobs import pace
from app.core.jobs import service as job_service
from app.core.jobs.spec import LABEL_FILTER, JobSpec
from app.core.jobs.validation import JobLimits
from app.core.paging import STEP_CURSOR_PATTERN, step_cursor, step_of_cursor
from app.serving.checkpoint_models import Which, model_from_checkpoint


class Progress(BaseModel):
    epoch: int
    epochs: int
    step: int
    total_steps: int
    fraction: float
    elapsed_seconds: float | None = Field(description="since the job first started, to its end or now; null before it starts")
    eta_seconds: float | None = Field(description="the steps left at the running attempt's recent pace; null until a pace is known")


class Estimate(BaseModel):
    parameters: int
    memory_bytes: int = Field(description="weights, gradients and optimizer state, the preprocessed dataset, one batch's activations")


class AttemptOut(BaseModel):
    attempt: int
    worker_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None = Field(description="succeeded | failed | cancelled | handed_back | lost; null while it runs")
    resumed_from_step: int | None
    checkpoint_step: int | None = Field(description="the newest checkpoint it wrote")
    last_step: int
    peak_memory_bytes: int | None = Field(description="the worker process's peak resident memory during the attempt")


class JobOut(BaseModel):
    id: str
    name: str
    labels: dict[str, str]
    state: JobState
    cancel_requested: bool = Field(description="a cancel was asked for and has not landed yet (the job is still queued or running)")
    attempt: int
    progress: Progress
    metrics: dict[str, float]
    error: ErrorInfo | None
    model_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    spec: dict[str, Any]
    estimate: Estimate | None = Field(description="what a worker needs to hold this job, as checked at submit")
    priority: int
    device: str = Field(description="the worker device it asked for: cpu, cuda or any")
    queue_position: int | None = Field(None, description="GET /v1/jobs/{id} of a queued job: how many jobs a free worker for its "
                                                         "device would start before it, were it free now")
    waiting_for: str | None = Field(None, description="GET /v1/jobs/{id} of a queued job: what it waits for, e.g. 'a cuda worker'")

    @classmethod
    def of(cls, job: Job, place: tuple[int, str] | None = None) -> "JobOut":
        return cls(
            priority=job.priority, device=job.device,
            queue_position=place[0] if place else None, waiting_for=place[1] if place else None,
            id=job.id, name=job.name, labels=job.spec.get("labels", {}), state=job.state, attempt=job.attempt,
            cancel_requested=bool(job.cancel_requested) and job.state in ("queued", "running"),
            progress=Progress(epoch=job.epoch, epochs=job.epochs, step=job.step, total_steps=job.total_steps, fraction=fraction_done(job),
                              elapsed_seconds=pace.elapsed_seconds(job, utcnow()), eta_seconds=pace.eta_seconds(job)),
            metrics=finite(job.latest_metrics), error=error_of(job),
            model_id=job.model_id, created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            spec=job.spec, estimate=Estimate(**job.estimate) if job.estimate else None,
        )


class JobList(PageOut):
    items: list[JobOut]
    next_cursor: str | None


class MetricPointOut(BaseModel):
    step: int
    epoch: int
    value: float
    time: datetime


class MetricsOut(BaseModel):
    job_id: str
    series: dict[str, list[MetricPointOut]] = Field(description="at most max_points a series; longer ones downsampled")
    total_points: dict[str, int] = Field(description="points of each series in the range asked; more than it holds when downsampled")


class PointsOut(BaseModel):
    job_id: str
    name: str
    points: list[MetricPointOut]
    next_cursor: str | None


MAX_STEP = 2**63 - 1  # steps are 64-bit columns: a larger number is no step, and the database would overflow on it

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=JobOut, operation_id="submitJob", responses=errors(413, 429))
def submit_job(spec: JobSpec, caller: SubmitCaller, session: SessionDep, settings: SettingsDep, broker: BrokerDep,
               request: Request, response: Response, idempotency_key: IdempotencyKeyHeader = None):
    once = Once(session=session, settings=settings, tenant_id=caller.tenant_id, route="submitJob", key=idempotency_key)
    asked = idempotency.fingerprint(spec.model_dump(mode="json"))
    if replay := once.earlier(asked):
        return replay
    job = job_service.create(session=session, tenant_id=caller.tenant_id, spec=spec, max_attempts=settings.max_attempts,
                             limits=JobLimits.of(settings))
    out, location = JobOut.of(job), str(request.url_for("get_job", job_id=job.id))
    if replay := once.commit(asked, idempotency.Answer(201, out.model_dump(mode="json"), location)):
        return replay
    broker.wake(job.id, job.device)
    response.headers["Location"] = location
    return out


@router.get("", response_model=JobList, operation_id="listJobs", responses=errors())
def list_jobs(caller: ReadCaller, session: ReadSessionDep, page: PageDep, settings: SettingsDep, state: JobState | None = None,
              label: Annotated[list[Annotated[str, StringConstraints(pattern=LABEL_FILTER, max_length=320)]] | None,
                               Query(description="key:value; repeat it and every one must match", examples=["team:vision"])] = None):
    labels = job_service.label_filters(label or [], settings.max_query_list)
    return JobList.of(job_service.list_jobs(session=session, tenant_id=caller.tenant_id, state=state, limit=page.limit, cursor=page.cursor,
                                            labels=labels))


@router.get("/{job_id}", response_model=JobOut, operation_id="getJob", responses=errors(404))
def get_job(job_id: str, caller: ReadCaller, session: ReadSessionDep, settings: SettingsDep):
    job = job_service.get(session=session, tenant_id=caller.tenant_id, job_id=job_id)
    return JobOut.of(job, job_service.place_in_queue(session=session, job=job, alive_seconds=settings.worker_alive_seconds))


@router.get("/{job_id}/metrics", response_model=MetricsOut, operation_id="getJobMetrics", responses=errors(404, 413))
def get_metrics(
    job_id: str, caller: ReadCaller, session: ReadSessionDep, settings: SettingsDep, request: Request,
    # Declared as one string (what a query value is on the wire); repeats are read from the request below.
    names: Annotated[str | None, Query(description="metric names, comma-separated (or repeat the parameter)")] = None,
    since_step: Annotated[int | None, Query(ge=0, le=MAX_STEP, description="points after this step")] = None,
    until_step: Annotated[int | None, Query(ge=0, le=MAX_STEP, description="points up to this step")] = None,
    max_points: Annotated[int, Query(ge=4, le=MAX_STEP, description="per series, at most KILN_MAX_METRIC_POINTS (10,000; a larger ask gets that many); "
                                                       "a longer series keeps the first, last, lowest and highest point of each of "
                                                       "max_points/4 stretches of steps (M4)")] = 1000,
):
    """Every series of the job, each at most ``max_points`` long: a chart of a million points costs
    what one of a thousand does. For every raw point, page through ``/metrics/{name}/points``."""
    wanted = metric_names(request.query_params.getlist("names"), settings.max_query_list)
    max_points = min(max_points, settings.max_metric_points)  # "at most": a larger ask is answered with the cap
    series = metric_service.series(session=session, tenant_id=caller.tenant_id, job_id=job_id, names=wanted, since_step=since_step,
                                   until_step=until_step, max_points=max_points)
    return MetricsOut(job_id=job_id, series={n: s.points for n, s in series.items()}, total_points={n: s.total for n, s in series.items()})


@router.get("/{job_id}/metrics/{name}/points", response_model=PointsOut, operation_id="getJobMetricPoints", responses=errors(404))
def get_metric_points(
    job_id: str, name: str, caller: ReadCaller, session: ReadSessionDep, settings: SettingsDep,
    since_step: Annotated[int | None, Query(ge=0, le=MAX_STEP, description="points after this step")] = None,
    until_step: Annotated[int | None, Query(ge=0, le=MAX_STEP, description="points up to this step")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_STEP, description="points a page, at most KILN_MAX_METRIC_POINTS (10,000; a larger ask gets that many)")] = 1000,
    cursor: Annotated[str | None, Query(pattern=STEP_CURSOR_PATTERN, description="next_cursor of the previous page")] = None,
):
    """One metric's raw points, in step order, a page at a time."""
    limit = min(limit, settings.max_metric_points)  # a page may always be shorter than asked
    after = step_of_cursor(cursor) if cursor else since_step
    found, last = metric_service.points(session=session, tenant_id=caller.tenant_id, job_id=job_id, name=name, since_step=after,
                                        until_step=until_step, limit=limit)
    return PointsOut(job_id=job_id, name=name, points=found, next_cursor=step_cursor(last) if last is not None else None)


def metric_names(names: list[str] | None, limit: int) -> list[str] | None:
    wanted = [n for part in names for n in part.split(",") if n] if names else None
    if wanted and len(wanted) > limit:
        raise over_limit("the number of names", len(wanted), limit, "KILN_MAX_QUERY_LIST", ["query", "names"])
    return wanted


@router.get("/{job_id}/attempts", response_model=list[AttemptOut], operation_id="getJobAttempts", responses=errors(404))
def get_attempts(job_id: str, caller: ReadCaller, session: ReadSessionDep):
    """Each attempt at the job, oldest first: which worker, how it ended, how far it got, its peak memory."""
    return [AttemptOut.model_validate(a, from_attributes=True) for a in job_service.attempts(session=session, tenant_id=caller.tenant_id,
                                                                                              job_id=job_id)]


@router.post("/{job_id}/cancel", response_model=JobOut, operation_id="cancelJob", responses=errors(404, 409))
def cancel_job(job_id: str, caller: TrainCaller, session: SessionDep, store: StoreDep):
    job = job_service.request_cancel(session=session, store=store, tenant_id=caller.tenant_id, job_id=job_id)
    session.commit()
    return JobOut.of(job)


class ModelFromCheckpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    checkpoint: Which = Field(description="latest: its newest checkpoint; best: the best by KILN_CHECKPOINT_MONITOR")


@router.post("/{job_id}/models", status_code=201, response_model=ModelOut, operation_id="createModelFromCheckpoint",
             responses=errors(404, 409, 413))
def model_from_job_checkpoint(job_id: str, body: ModelFromCheckpoint, caller: TrainCaller, session: SessionDep, store: StoreDep,
                              settings: SettingsDep, request: Request, response: Response):
    """A model from one of the job's checkpoints, in any state (one that timed out or failed keeps its
    checkpoints), with the metrics recorded at that step; the job's own model, if any, stays as it is."""
    model = model_from_checkpoint(session=session, store=store, settings=settings, tenant_id=caller.tenant_id, job_id=job_id,
                                  which=body.checkpoint)
    session.commit()
    response.headers["Location"] = str(request.url_for("get_model", model_id=model.id))
    return ModelOut.of(model)


@router.delete("/{job_id}", status_code=204, operation_id="deleteJob", responses=errors(404, 409))
def delete_job(job_id: str, caller: TrainCaller, session: SessionDep, store: StoreDep,
               delete_model: Annotated[bool, Query(description="its model too (refused while a queued or running job needs it)")] = False):
    """A finished job, its metrics, checkpoints and log; its model stays unless ``delete_model``."""
    job_service.delete(session=session, store=store, tenant_id=caller.tenant_id, job_id=job_id, with_model=delete_model)
    session.commit()
    return Response(status_code=204)


@router.get("/{job_id}/logs", response_class=PlainTextResponse, operation_id="getJobLogs", responses=errors(404, 429))
async def get_logs(job_id: str, caller: ReadCaller, request: Request,
                   follow: Annotated[bool, Query(description="stream the log as it is written (chunked text), ending when the job ends")] = False):
    if follow:
        return await job_events.follow_log(request, caller.tenant_id, job_id)
    return PlainTextResponse(await run_in_threadpool(_read_log, request, caller.tenant_id, job_id))


def _read_log(request: Request, tenant_id: str, job_id: str) -> str:
    with read_only(request.app.state.sessions()) as session:
        return job_service.read_log(session=session, store=request.app.state.store, tenant_id=tenant_id, job_id=job_id)
