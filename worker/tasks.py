"""Celery tasks: thin, like views. The message carries a job id; the row says what to do."""

from app.queue import TRAIN_TASK
from app.settings import get_settings
from worker.celery_app import app
from worker.run_job import run_training_job


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train(job_id: str) -> str | None:
    return run_training_job(job_id, get_settings())
