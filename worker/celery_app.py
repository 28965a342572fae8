"""The Celery application of the training workers.

Run with the solo pool: one job per worker process, no fork after torch has started its thread
pools, and torch threads set once from the settings. Scale by running more workers.
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown, worker_shutting_down

from app.core.artifacts.configured import open_store
from app.core.db.engine import session_factory
from app.core.jobs.reconciler import Reconciler
from app.core.queue import RUN_JOB_TASK, celery_config, prepare_sql_broker, queue_of
from app.core.settings import get_settings
from worker import lifecycle
from worker.attempt import worker_device, worker_id
from worker.presence import Presence
from worker.webhook_sender import WebhookSender

settings = get_settings()
prepare_sql_broker(settings)

app = Celery("kiln-worker")
app.conf.update(celery_config(settings))
app.conf.update(include=["worker.tasks"])


def send(job_id: str, device: str) -> None:
    """The wake-up message of a committed job (a hand-back, a reconciler's re-send)."""
    app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue_of(settings, device))


def _configure_torch() -> None:
    import torch

    torch.set_num_threads(settings.torch_threads)


_reconciler: Reconciler | None = None
_presence: Presence | None = None
_webhooks: WebhookSender | None = None


@worker_ready.connect
def _on_ready(**_):
    global _reconciler, _presence, _webhooks
    _configure_torch()
    sessions = session_factory(settings.database_url)
    if settings.run_reconciler:
        _reconciler = Reconciler(settings, sessions, send, open_store(settings)).start()
    device = worker_device(settings)
    _presence = Presence(sessions, worker_id(), device, settings.worker_beat_seconds).start()
    _webhooks = WebhookSender(sessions, settings).start()
    logging.getLogger("kiln.worker").info("worker ready; serves %s jobs; torch threads: %d", device, settings.torch_threads)


@worker_shutting_down.connect
def _on_shutting_down(**_):
    # Runs inside Celery's SIGTERM/SIGINT handler: the running trainer checkpoints and hands its job back.
    lifecycle.request_shutdown()


@worker_shutdown.connect
def _on_shutdown(**_):
    if _reconciler:
        _reconciler.stop()
    if _presence:
        _presence.stop()
    if _webhooks:
        _webhooks.stop()


@worker_process_init.connect
def _on_process_init(**_):
    _configure_torch()
