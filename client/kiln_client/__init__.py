"""Kiln's Python SDK: submit training jobs, follow them, and call the models they make, over
Kiln's REST API. httpx only: no torch, no server code.

    from kiln_client import Client
    kiln = Client()
    job = kiln.jobs.submit(spec)
    for event in job.events(): ...
    model = job.wait(timeout=600).model()
    model.predict(samples)
"""

from kiln_client.client import Client
from kiln_client.errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobCancelled,
    JobFailed,
    KilnError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
)
from kiln_client.events import Event
from kiln_client.jobs import Job
from kiln_client.models import Model, Predictions

__all__ = [
    "ApiError", "Client", "Conflict", "ConnectionFailed", "Event", "Forbidden", "Job", "JobCancelled", "JobFailed", "KilnError",
    "Model", "NotFound", "Predictions", "QuotaExceeded", "RateLimited", "ServerError", "TooLarge", "Unauthorized", "Unavailable",
    "ValidationError", "WaitTimeout",
]
