"""Training: the one epoch loop, what each family supplies, and a job's data, schedule and optimizer. No SQL, no Celery."""
