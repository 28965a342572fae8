"""Celery tasks: thin, like views. The message carries a job id; the row says what to do."""

from celery.exceptions import Reject

from app.queue import TRAIN_TASK
from app.settings import get_settings
from worker import lifecycle
from worker.celery_app import app
from worker.run_job import run_job


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train(job_id: str) -> str | None:
    if lifecycle.shutting_down.is_set():
        # A message taken during warm shutdown (often the very job this worker just handed back):
        # put it back for a worker that is staying, without claiming anything.
        raise Reject("worker is shutting down", requeue=True)
    return run_job(job_id, get_settings())
