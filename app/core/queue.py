"""The broker, as far as the rules need it: the wake-up message's task name and Celery's settings
(as plain data), the embedded broker's tables made up front, and what is waiting in the queue.

Messages carry a job id and say "there is work for this device": the worker that takes one claims
whichever job the database says it should run next (``jobs.scheduling``). There is a queue per
job device: jobs for ``any`` device in the base queue (``KILN_QUEUE_NAME``), which every worker
consumes; ``.cpu`` and ``.cuda`` for jobs that ask for one, consumed by such workers only.

The database holds the job. The Celery apps that send
(``app.api.broker``) and consume (``worker.celery_app``) both take their settings from here, so
this module imports no Celery: the rules that send (the reconciler, a worker's hand-back) are
handed a ``Send``.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kombu import Connection, Queue

from app.core.settings import Settings

log = logging.getLogger("kiln.queue")

# The one task: run a job's next attempt, whatever its kind (training or batch inference).
RUN_JOB_TASK = "kiln.run_job"
# Longer than any lease: Redis redelivers an unacknowledged message after this, and the lease,
# not the broker, decides who trains.
REDIS_VISIBILITY_TIMEOUT_S = 12 * 3600

# Sends the wake-up message of one committed job (its id, and the device it asks for: cpu, cuda
# or any); raises when the broker refuses it.
Send = Callable[[str, str], None]
DEVICES = ("cpu", "cuda")


def queue_of(settings: Settings, device: str) -> str:
    """The queue a message for a job asking for ``device`` goes to."""
    return settings.queue_name if device == "any" else f"{settings.queue_name}.{device}"


def queues_served(settings: Settings, device: str) -> list[str]:
    """The queues a worker of ``device`` (cpu or cuda) consumes."""
    return [queue_of(settings, device), queue_of(settings, "any")]


def all_queues(settings: Settings) -> list[str]:
    return [queue_of(settings, d) for d in ("any", *DEVICES)]


def celery_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_default_queue": settings.queue_name,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
    }
    transport_options = broker_transport_options(settings)
    if transport_options:
        conf["broker_transport_options"] = transport_options
    return conf


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_url.startswith("sqla+sqlite"):
        # Handed to create_engine by kombu: wait for the SQLite write lock instead of failing.
        return {"connect_args": {"timeout": 30}}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S}
    return {}


def prepare_sql_broker(settings: Settings) -> None:
    """WAL mode on the broker's SQLite file (it persists in the file), so the API's sends and the
    worker's polling do not lock each other out; then kombu's tables and the queue's row.

    kombu creates both lazily, on the first send or poll. When the API's first send and a new
    worker's first poll race, one of them can lose the INSERT of the queue row, and kombu leaves
    that session needing a rollback it never does: a worker that stays up and never consumes.
    Made here, once, before any process sends or polls, there is nothing to race for.
    """
    if not settings.broker_url.startswith("sqla+"):
        return
    if settings.broker_url.startswith("sqla+sqlite:///"):
        path = Path(settings.broker_url.removeprefix("sqla+sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    with Connection(settings.broker_url, transport_options=broker_transport_options(settings)) as conn:
        for name in all_queues(settings):
            Queue(name).bind(conn.default_channel).declare()


def wake_worker(send: Send, job_id: str, device: str) -> None:
    """Sends the message for a job whose row is committed. A send that fails loses nothing: the
    job is queued in the database, and the reconciler re-sends for a queued job without a message."""
    try:
        send(job_id, device)
    except Exception:  # noqa: BLE001 - see above
        log.warning("job %s is queued but its message could not be sent; the reconciler will", job_id, exc_info=True)


def _job_id_of(raw: bytes | str) -> str | None:
    """The job id inside one serialized Celery message (kombu's JSON envelope, base64 body)."""
    try:
        envelope = orjson.loads(raw)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = orjson.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError, orjson.JSONDecodeError):
        return None


def queued_job_ids(settings: Settings) -> set[str] | None:
    """Job ids with a message waiting in the broker's queue; None when this broker cannot be read."""
    url = settings.broker_url
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            # kombu keeps one list per priority step; the default priority uses the bare queue name.
            keys = [f"{queue}{step}" for queue in all_queues(settings) for step in ["", *(f"\x06\x16{p}" for p in range(1, 10))]]
            items = [item for key in keys for item in client.lrange(key, 0, -1)]
        finally:
            client.close()
    elif url.startswith("sqla+"):
        from sqlalchemy import create_engine, text

        engine = create_engine(url.removeprefix("sqla+"))
        try:
            with engine.connect() as conn:
                items = conn.execute(text(
                    "SELECT m.payload FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
                    "WHERE q.name IN (:any, :cpu, :cuda) AND m.visible = :visible"
                ), {**dict(zip(("any", "cpu", "cuda"), all_queues(settings))), "visible": True}).scalars().all()
        except Exception:  # noqa: BLE001 - tables not made yet: nothing is queued
            items = []
        finally:
            engine.dispose()
    else:
        return None
    return {job_id for job_id in map(_job_id_of, items) if job_id}
