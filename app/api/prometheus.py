"""``GET /metrics`` in the Prometheus text format, and predict's request counts and latency.

Two sources, one answer:
- what this host's API processes count themselves (``app.serving.telemetry``: predict requests,
  latency, batch sizes, the model cache), by prometheus-client in multiprocess mode: `kiln api`
  gives every run a folder (``PROMETHEUS_MULTIPROC_DIR``) where each process writes, so any
  process reports them all (each flushes its tallies there every second);
- what the database knows for the whole service, read at scrape time: jobs queued and running by
  device, workers alive and busy, and the counters every worker adds to (``app.core.service_stats``).

Label values are ids and fixed words, never a tenant's data: a predict request that failed is
counted without its model id (an unknown id would be the caller's free text, and a label per typo).
Open by default, as scrape targets usually are; ``KILN_METRICS_TOKEN`` puts it behind a bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Iterator
from time import perf_counter

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.api.errors import errors
from app.core import service_stats, workers
from app.core.db.engine import read_only
from app.core.db.tables import Job
from app.core.errors import NotFound, Unauthorized
from app.serving import telemetry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FLUSH_SECONDS = 1.0


class PredictMeter:
    """Wraps one predict request's ``send`` to see its status (the router's path, for multipart);
    ``done()`` counts it."""

    __slots__ = ("model_id", "send", "started", "status")

    def __init__(self, model_id: str, send):
        self.model_id, self.started, self.status = model_id, perf_counter(), 500
        inner = send

        async def counted(message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            await inner(message)

        self.send = counted

    def done(self) -> None:
        telemetry.predict_request(self.model_id, self.status, perf_counter() - self.started)


async def flush_every_second() -> None:
    """This process's tallies into the shared values, so a scrape by any process sees them."""
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        telemetry.flush()


class ServiceCollector(Collector):
    """The database's view of the whole service, read when scraped."""

    def __init__(self, sessions, alive_seconds: float):
        self.sessions, self.alive_seconds = sessions, alive_seconds

    def collect(self) -> Iterator[Metric]:
        with read_only(self.sessions()) as session:
            waiting = session.execute(select(Job.state, Job.device, func.count()).where(Job.state.in_(("queued", "running")))
                                      .group_by(Job.state, Job.device)).all()
            alive = workers.alive(session=session, alive_seconds=self.alive_seconds)
            histograms, counters = service_stats.read(session)
        jobs = GaugeMetricFamily("kiln_jobs", "Jobs queued and running now, by the device they asked for", labels=["state", "device"])
        counts = {(state, device): n for state, device, n in waiting}
        for state in ("queued", "running"):
            for device in sorted({d for _, d in counts} | {"any", "cpu", "cuda"}):
                jobs.add_metric([state, device], counts.get((state, device), 0))
        yield jobs
        live = GaugeMetricFamily("kiln_workers_alive", "Workers seen within KILN_WORKER_ALIVE_SECONDS", labels=["device"])
        busy = GaugeMetricFamily("kiln_workers_busy", "Live workers running a job", labels=["device"])
        for device in sorted(set(alive) | {"cpu", "cuda"}):
            live.add_metric([device], alive.get(device, {}).get("workers", 0))
            busy.add_metric([device], alive.get(device, {}).get("busy", 0))
        yield live
        yield busy
        for h in service_stats.HISTOGRAMS:
            family = HistogramMetricFamily(h.name, h.help, labels=list(h.labels))
            for series in histograms[h.name]:
                family.add_metric([series.labels.get(name, "") for name in h.labels], series.buckets, series.sum)
            yield family
        for c in service_stats.COUNTERS:
            family = CounterMetricFamily(c.name.removesuffix("_total"), c.help, labels=list(c.labels))
            for labels, value in counters[c.name]:
                family.add_metric([labels.get(name, "") for name in c.labels], value)
            yield family


def process_exiting() -> None:
    """This process's live gauges (the model cache's bytes) stop counting in the sum."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())


router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, operation_id="getMetrics",
            responses={**errors(404), 200: {"content": {"text/plain": {}}, "description": "the Prometheus text format"}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics of the whole service (open unless KILN_METRICS_TOKEN is set; then send it
    as a bearer token). A 404 when KILN_METRICS_ENABLED is false."""
    settings = request.app.state.settings
    if not settings.metrics_enabled:
        raise NotFound("metrics are off (KILN_METRICS_ENABLED=false)")
    if settings.metrics_token:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), settings.metrics_token.encode()):
            raise Unauthorized("GET /metrics needs the bearer token set in KILN_METRICS_TOKEN", headers={"WWW-Authenticate": "Bearer"})
    telemetry.flush()  # on the event loop, where the tallies are kept
    return Response(await run_in_threadpool(_exposition, request.app.state.sessions, settings.worker_alive_seconds), media_type=CONTENT_TYPE)


def _exposition(sessions, alive_seconds: float) -> bytes:
    service = CollectorRegistry(auto_describe=False)
    service.register(ServiceCollector(sessions, alive_seconds))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        here = CollectorRegistry()
        multiprocess.MultiProcessCollector(here)
        return generate_latest(here) + generate_latest(service)
    return generate_latest(REGISTRY) + generate_latest(service)  # one process (tests, an embedded app): its own registry
