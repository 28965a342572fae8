"""The live stream of a job over real processes, on both backends: a client that drops the
connection three times and resumes with Last-Event-ID ends with exactly the sequence of one that
never dropped, and that sequence is the job's metrics and log."""

from __future__ import annotations

import json
import re
import threading

import httpx
import pytest

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

JOB = {
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [64]}},
    "data": {"dataset": "builtin:digits"},
    "training": {"epochs": 6, "batch_size": 16},
}


def read_events(client: httpx.Client, job_id: str, last_event_id: str | None, stop_after: int | None = None) -> list[dict]:
    """Events as an SSE client parses them (id, event, data), until ``end`` or ``stop_after`` events."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    seen: list[dict] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=120) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        event: dict = {}
        for line in r.iter_lines():
            if line.startswith(":"):
                continue  # a heartbeat
            if line == "":
                if event:
                    seen.append(event)
                    event = {}
                    if seen[-1]["event"] == "end" or (stop_after is not None and len(seen) >= stop_after):
                        return seen  # leaving the block drops the connection
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            event[field] = json.loads(value) if field == "data" else value
    return seen


def test_a_client_that_drops_three_times_sees_every_event_once(stack):
    client = stack.new_tenant()
    job_id = client.post("/v1/jobs", json=JOB).json()["id"]
    followed: list[str] = []
    follower = threading.Thread(target=lambda: followed.append(
        client.get(f"/v1/jobs/{job_id}/logs", params={"follow": "true"}, timeout=180).text))
    follower.start()

    dropped: list[dict] = []
    for _ in range(3):  # three connections cut short while the job runs
        dropped += read_events(client, job_id, dropped[-1]["id"] if dropped else None, stop_after=4)
    dropped += read_events(client, job_id, dropped[-1]["id"])
    follower.join(timeout=180)

    job = wait_for(client, job_id, {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded", stack.read_logs()
    whole = read_events(client, job_id, None)  # one connection, from the start
    assert dropped == whole
    assert [int(e["id"]) for e in whole] == list(range(1, len(whole) + 1))

    kinds = [e["event"] for e in whole]
    states = [e["data"] for e in whole if e["event"] == "state"]
    assert states[0] == {"state": "queued", "attempt": 0} and {"state": "running", "attempt": 1} in states
    assert states[-1] == {"state": "succeeded", "attempt": 1} and kinds[-1] == "end" and whole[-1]["data"] == {"state": "succeeded"}
    assert "progress" in kinds and kinds.count("end") == 1
    # Each progress event carries its ETA (null until the worker has a pace: this job may end in well
    # under a second on a fast machine; tests/worker/test_job_context.py checks the value itself).
    assert all({"epoch", "step", "total_steps", "eta_seconds"} <= set(e["data"]) for e in whole if e["event"] == "progress")

    # The metric events, applied in order (a later point at the same name and step replaces the
    # earlier, as in the database: the epoch's train_loss replaces the sample at its last step),
    # are the job's points as the API serves them.
    streamed = {(p["name"], p["step"]): p["value"] for e in whole if e["event"] == "metric" for p in e["data"]["points"]}
    served = client.get(f"/v1/jobs/{job_id}/metrics", params={"max_points": 10_000}).json()["series"]
    assert streamed == {(name, p["step"]): p["value"] for name, points in served.items() for p in points}

    # The log events are the job's log, line for line, and so is what logs?follow=true streamed.
    log = client.get(f"/v1/jobs/{job_id}/logs").text
    assert "".join(e["data"]["line"] for e in whole if e["event"] == "log") == log
    assert followed == [log] and re.search(r"attempt 1 ended at step (\d+) of \1 \(after \d+ epochs\): succeeded\n$", log), log
    # A log worth reading: the start, each epoch's metrics and pace, each checkpoint, the outcome.
    assert "attempt 1 started on" in log and "checkpoint at step 90 (epoch 1)" in log
    assert re.search(r"epoch 6: train_loss [0-9.e-]+, val_loss [0-9.e-]+, val_accuracy [0-9.]+; [0-9.]+ s, [0-9,]+ samples/s", log), log


def test_a_stream_of_another_tenants_job_is_a_404_and_a_bad_event_id_a_422(stack):
    owner, stranger = stack.new_tenant(), stack.new_tenant()
    job_id = owner.post("/v1/jobs", json=JOB | {"training": {"epochs": 1}}).json()["id"]
    assert stranger.get(f"/v1/jobs/{job_id}/events").status_code == 404
    assert stranger.get(f"/v1/jobs/{job_id}/logs", params={"follow": "true"}).status_code == 404
    r = owner.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "seven"})
    assert r.status_code == 422 and "Last-Event-ID" in r.json()["error"]["message"]
    wait_for(owner, job_id, {"succeeded", "failed", "cancelled"})
