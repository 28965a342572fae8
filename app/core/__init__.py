"""What the API, serving and the worker share: settings, tables, storage, rules. No FastAPI, no Celery, no torch."""
