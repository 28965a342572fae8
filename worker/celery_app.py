"""The Celery application of the training workers.

Run with the solo pool: one job per worker process, no fork after torch has started its thread
pools, and torch threads set once from the settings. Scale by running more workers.
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from app.queue import celery_config, prepare_embedded_broker
from app.settings import get_settings

settings = get_settings()
prepare_embedded_broker(settings)

app = Celery("kiln-worker")
app.conf.update(celery_config(settings))
app.conf.update(include=["worker.tasks"])


def _configure_torch() -> None:
    import torch

    torch.set_num_threads(settings.torch_threads)


@worker_ready.connect
def _on_ready(**_):
    _configure_torch()
    logging.getLogger("kiln.worker").info("worker ready; torch threads: %d", settings.torch_threads)


@worker_process_init.connect
def _on_process_init(**_):
    _configure_torch()
