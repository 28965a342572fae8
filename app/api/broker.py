"""The API's side of the broker: a Celery app that only sends, by task name (it never imports
the worker). Messages go out after the job's row is committed."""

from __future__ import annotations

import logging

from celery import Celery

from app.core import queue
from app.core.settings import Settings

log = logging.getLogger("kiln.api")


class Broker:
    def __init__(self, settings: Settings):
        self.settings = settings
        # Kept for the connection pool it holds.
        self._app = Celery("kiln-api", set_as_current=False)
        self._app.conf.update(queue.celery_config(settings))

    def send(self, job_id: str, device: str) -> None:
        self._app.send_task(queue.RUN_JOB_TASK, args=[job_id], queue=queue.queue_of(self.settings, device))

    def wake(self, job_id: str, device: str) -> None:
        """The job's message, or a warning and the reconciler's re-send if the broker refuses it."""
        queue.wake_worker(self.send, job_id, device)

    def reachable(self) -> bool:
        try:
            with self._app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:  # noqa: BLE001 - readiness reports any failure as not ready
            log.warning("broker not reachable", exc_info=True)
            return False
