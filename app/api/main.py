"""The FastAPI application: settings, the shared pieces on ``app.state``, routers, middleware."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import (
    architectures,
    builtin_datasets,
    dashboard,
    datasets,
    health,
    inference_jobs,
    inference_protocol,
    job_events,
    jobs,
    keys,
    models,
    openapi,
    prometheus,
    queue,
    registry,
    usage,
    webhooks,
)
from app.api.broker import Broker
from app.api.errors import install_error_handlers
from app.api.fast_lane import PredictFastLane
from app.api.middleware import BodySizeLimit, EmptyQueryAsAbsent, FormAsJson, RateLimitHeaders
from app.api.ratelimit import RateLimiter
from app.core.artifacts.configured import open_store
from app.core.db.engine import session_factory
from app.core.jobs.reconciler import Reconciler
from app.core.settings import Settings, get_settings
from app.core.ttlcache import TTLCache
from app.serving import telemetry
from app.serving.forward import configure_threads
from app.serving.runtime import ServingRuntime


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        reconciler = Reconciler(settings, state.sessions, state.broker.send, state.store).start() if settings.run_reconciler else None
        # Everything imported so far (torch, FastAPI, SQLAlchemy) lives as long as the process:
        # move it out of the collector's sight, so collections on the request path scan only
        # what requests allocate.
        gc.collect()
        gc.freeze()
        flusher = asyncio.create_task(prometheus.flush_every_second()) if settings.metrics_enabled else None
        routes = asyncio.create_task(state.serving.poll_routes())  # registered names: moves seen coming, warmed first
        await state.serving.preload(settings.serving_preload)
        yield
        routes.cancel()
        if flusher:
            flusher.cancel()
        if reconciler:
            reconciler.stop()
        state.serving.close()
        state.sessions.kw["bind"].dispose()
        prometheus.process_exiting()

    app = FastAPI(
        title="Kiln",
        version="0.1.0",
        description="Training as a service: submit deep-learning jobs, follow them, serve the models they produce.",
        lifespan=lifespan,
        # Kiln configures no OpenTelemetry exporter; FastAPI's check for one costs ~10 us per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    configure_threads(settings.api_torch_threads)
    telemetry.enable(settings.metrics_enabled)
    app.state.settings = settings
    app.state.sessions = session_factory(settings.database_url)
    app.state.store = open_store(settings)
    app.state.broker = Broker(settings)
    app.state.serving = ServingRuntime(settings, app.state.sessions, app.state.store)
    app.state.callers = TTLCache(settings.auth_cache_seconds)
    app.state.rate_limiter = RateLimiter(settings)
    app.state.streams = {}  # tenant id -> its open event and log streams in this process
    install_error_handlers(app)
    build_openapi = app.openapi
    app.openapi = lambda: app.openapi_schema or openapi.finish(build_openapi(), settings)
    resources = (models, inference_protocol, health, prometheus, jobs, job_events, inference_jobs, datasets, builtin_datasets, architectures,
                 keys, usage, queue, webhooks, registry)
    for resource in resources:
        app.include_router(resource.router)
    # The routes as declared (each router carries its prefix): newer FastAPI nests included
    # routers, so the app's own route list is no place to look a path up.
    app.state.api_routes = [route for resource in resources for route in resource.router.routes]
    app.include_router(dashboard.router)
    app.mount("/ui", dashboard.assets, name="ui")
    app.add_middleware(RateLimitHeaders)  # innermost: only what the router answers (the fast lane sets its own)
    app.add_middleware(PredictFastLane, metered=settings.metrics_enabled)  # inside the body limit and form-as-JSON
    app.add_middleware(FormAsJson)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes, upload_max_bytes=settings.max_upload_bytes)
    app.add_middleware(EmptyQueryAsAbsent)  # outermost: every lane sees the query as meant
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app
