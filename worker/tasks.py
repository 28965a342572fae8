"""Celery tasks: thin, like views. The message carries a job id; the row says what to do."""

from celery.exceptions import Reject

from app.core.queue import RUN_JOB_TASK
from app.core.settings import get_settings
from worker import lifecycle
from worker.attempt import run_next
from worker.celery_app import app, send


@app.task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str | None:
    if lifecycle.shutting_down.is_set():
        # A message taken during warm shutdown (often the very job this worker just handed back):
        # put it back for a worker that is staying, without claiming anything.
        raise Reject("worker is shutting down", requeue=True)
    return run_next(job_id, get_settings(), send)
