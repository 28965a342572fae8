"""The Celery worker: one job attempt at a time, reported through a context; training lives in ``worker.training``."""
