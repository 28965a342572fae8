"""A job's attempt run in the test's own process by the worker's own code, as its Celery task runs it."""

from __future__ import annotations

from app.api.broker import Broker
from app.core.settings import Settings
from worker.attempt import run_attempt


def run_job(job_id: str, settings: Settings) -> str | None:
    return run_attempt(job_id, settings, Broker(settings).send)
