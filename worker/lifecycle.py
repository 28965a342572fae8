"""What a worker process is doing now, so a SIGTERM can reach the running trainer.

Celery's warm shutdown lets the current task finish; the handler below turns that into "stop
between batches, checkpoint, hand the job back", so a stopping worker frees its job in seconds.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_active: set = set()
shutting_down = threading.Event()


def register(ctx) -> None:
    with _lock:
        _active.add(ctx)
    if shutting_down.is_set():
        ctx.request_stop("shutdown")


def unregister(ctx) -> None:
    with _lock:
        _active.discard(ctx)


def request_shutdown() -> None:
    """Safe from a signal handler: sets flags only."""
    shutting_down.set()
    for ctx in list(_active):
        ctx.request_stop("shutdown")
