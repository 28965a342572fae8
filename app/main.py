"""The FastAPI application."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import inference
from app.artifacts import ArtifactStore
from app.db.engine import session_factory
from app.errors import install_error_handlers
from app.limits import BodySizeLimit, FormAsJson
from app.predict_http import PredictFastLane
from app.reconciler import Reconciler
from app.routers import architectures, datasets, health, inference_jobs, jobs, models
from app.serving import ServingRuntime
from app.settings import Settings, get_settings
from app.ttlcache import TTLCache


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        reconciler = Reconciler(settings, app.state.sessions).start() if settings.run_reconciler else None
        # Everything imported so far (torch, FastAPI, SQLAlchemy) lives as long as the process:
        # move it out of the collector's sight, so collections on the request path scan only
        # what requests allocate.
        gc.collect()
        gc.freeze()
        yield
        if reconciler:
            reconciler.stop()
        app.state.serving.close()
        app.state.sessions.kw["bind"].dispose()

    app = FastAPI(
        title="Kiln",
        version="0.1.0",
        description="Training as a service: submit deep-learning jobs, follow them, serve the models they produce.",
        lifespan=lifespan,
        # Kiln configures no OpenTelemetry exporter; FastAPI's check for one costs ~10 us per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.sessions = session_factory(settings.database_url)
    inference.configure_threads(settings.api_torch_threads)
    app.state.serving = ServingRuntime(settings, app.state.sessions, ArtifactStore(settings.artifacts_dir))
    app.state.callers = TTLCache(settings.auth_cache_seconds)
    install_error_handlers(app)
    for router in (models.router, health.router, jobs.router, inference_jobs.router, datasets.router, architectures.router):
        app.include_router(router)
    app.add_middleware(PredictFastLane)  # innermost of ours: inside the body limit and form-as-JSON
    app.add_middleware(FormAsJson)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes, upload_max_bytes=settings.max_upload_bytes)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app
