"""Training jobs: submit, list, follow, wait, cancel, and the model a job made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kiln_client import events as event_stream
from kiln_client.errors import JobCancelled, JobFailed, WaitTimeout
from kiln_client.paging import pages
from kiln_client.transport import Transport, new_idempotency_key

if TYPE_CHECKING:
    from kiln_client.models import Model

TERMINAL = ("succeeded", "failed", "cancelled")


class Job:
    """One job as last read (``data``, the API's JSON); ``refresh()`` reads it again."""

    def __init__(self, transport: Transport, data: dict[str, Any]):
        self._t, self.data = transport, data

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name!r} {self.state}>"

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def state(self) -> str:
        return self.data["state"]

    @property
    def model_id(self) -> str | None:
        return self.data.get("model_id")

    def refresh(self) -> Job:
        self.data = self._t.json("GET", f"/v1/jobs/{self.id}")
        return self

    def events(self, after: int = 0) -> Iterator[event_stream.Event]:
        """state, progress, metric, log and end events as they happen, from the first (or after
        event ``after``); resumes itself after a dropped connection; ends with the job."""
        return event_stream.stream(self._t, self.id, after=after)

    def wait(self, timeout: float | None = None, poll: float = 1.0) -> Job:
        """Until the job ends: itself if it succeeded, else ``JobFailed`` (with the job's error) or
        ``JobCancelled``; ``WaitTimeout`` after ``timeout`` seconds (the job goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.25, poll)
        while self.refresh().state not in TERMINAL:
            if deadline is not None and time.monotonic() + delay > deadline:
                raise WaitTimeout(f"job {self.id} still {self.state} after {timeout:g} s")
            time.sleep(delay)
            delay = min(poll, delay * 2)
        if self.state == "failed":
            raise JobFailed(self.data)
        if self.state == "cancelled":
            raise JobCancelled(self.data)
        return self

    def model(self) -> Model:
        from kiln_client.models import Model

        if not self.model_id:
            self.refresh()
        if not self.model_id:
            raise ValueError(f"job {self.id} has no model (it is {self.state})")
        return Model(self._t, self._t.json("GET", f"/v1/models/{self.model_id}"))

    def model_from_checkpoint(self, checkpoint: str = "latest") -> Model:
        """A new model from one of the job's checkpoints, ``latest`` or ``best`` (by the server's
        monitored metric), with the metrics recorded at that step: what a job that timed out or
        failed had learnt."""
        from kiln_client.models import Model

        return Model(self._t, self._t.json("POST", f"/v1/jobs/{self.id}/models", json={"checkpoint": checkpoint}))

    def metrics(self, names: list[str] | None = None, max_points: int = 1000) -> dict[str, list[dict[str, Any]]]:
        """Each series, at most ``max_points`` long (the server downsamples longer ones)."""
        params: dict[str, Any] = {"max_points": max_points}
        if names:
            params["names"] = ",".join(names)
        return self._t.json("GET", f"/v1/jobs/{self.id}/metrics", params=params)["series"]

    def logs(self) -> str:
        return self._t.request("GET", f"/v1/jobs/{self.id}/logs").text

    def follow_logs(self) -> Iterator[str]:
        """The log's lines as they are written, ending when the job ends."""
        for event in self.events():
            if event.kind == "log":
                yield event.data["line"]

    def cancel(self) -> Job:
        self.data = self._t.json("POST", f"/v1/jobs/{self.id}/cancel")
        return self

    def delete(self, with_model: bool = False) -> None:
        self._t.request("DELETE", f"/v1/jobs/{self.id}", params={"delete_model": "true"} if with_model else None)


class Jobs:
    def __init__(self, transport: Transport):
        self._t = transport

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> Job:
        """A new job from a spec (the API's JSON, as a dict). Safe to retry: the same
        ``Idempotency-Key`` (one is made when not given) never makes a second job."""
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return Job(self._t, self._t.json("POST", "/v1/jobs", json=spec, headers=headers))

    def get(self, job_id: str) -> Job:
        return Job(self._t, self._t.json("GET", f"/v1/jobs/{job_id}"))

    def list(self, state: str | None = None, labels: dict[str, str] | None = None, limit: int | None = None) -> Iterator[Job]:
        """Newest first, page after page, up to ``limit`` jobs (all when None)."""
        params: dict[str, Any] = {"label": [f"{k}:{v}" for k, v in (labels or {}).items()]}
        if state:
            params["state"] = state
        yield from (Job(self._t, item) for item in pages(self._t, "/v1/jobs", params, limit))

