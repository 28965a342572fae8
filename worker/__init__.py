"""The Celery worker: tasks, the Trainer and its reporting context, dataset loading."""
