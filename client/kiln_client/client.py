"""The entry point of the SDK: ``Client()`` finds the server and key as the CLI does."""

from __future__ import annotations

from typing import Any

from kiln_client.config import resolve
from kiln_client.datasets import Datasets
from kiln_client.jobs import Jobs
from kiln_client.models import Models
from kiln_client.transport import Transport


class Client:
    """``Client()`` talks to ``KILN_URL`` (or the ``kiln login`` config, or the local server) with
    ``KILN_API_KEY`` (or the key saved with it); ``Client(url, key)`` says it outright.

    >>> kiln = Client()
    >>> job = kiln.jobs.submit({"model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}})
    >>> job.wait(timeout=600).model().predict(samples).predictions
    """

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = 30.0, retries: int = 3):
        self.target = resolve(url, key)
        self.transport = Transport(self.target.url, self.target.key, timeout=timeout, retries=retries)
        self.jobs = Jobs(self.transport)
        self.datasets = Datasets(self.transport)
        self.models = Models(self.transport)

    @property
    def url(self) -> str:
        return self.target.url

    def usage(self) -> dict[str, Any]:
        """The tenant's jobs by state, storage and quotas."""
        return self.transport.json("GET", "/v1/usage")

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
