"""A model from a checkpoint: a job that ran out of time keeps no model of its own, yet what it had
learnt is one POST away, with the metrics recorded at that step; its log says how it ended."""

from __future__ import annotations

import re

import pytest
from sklearn.datasets import load_digits

from tests.api.inline_worker import run_job

DIGITS = load_digits()
TIMED_OUT_JOB = {
    "name": "out-of-time",
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [64]}},
    "data": {"dataset": "builtin:digits", "validation_fraction": 0.2},
    "training": {"epochs": 1000, "batch_size": 64, "max_runtime_seconds": 3},
    "seed": 0,
}


@pytest.fixture(scope="module")
def timed_out(client, owner, settings) -> dict:
    job = client.post("/v1/jobs", json=TIMED_OUT_JOB, headers=owner).json()
    assert run_job(job["id"], settings) == "failed"
    return client.get(f"/v1/jobs/{job['id']}", headers=owner).json()


def values_at(client, owner, job_id: str, step: int) -> dict[str, float]:
    series = client.get(f"/v1/jobs/{job_id}/metrics", params={"max_points": 10_000}, headers=owner).json()["series"]
    return {name: p["value"] for name, points in series.items() for p in points if p["step"] == step}


def test_a_timed_out_job_says_where_it_stopped_and_keeps_no_model(client, owner, timed_out):
    assert timed_out["error"]["type"] == "timeout" and timed_out["model_id"] is None
    last = client.get(f"/v1/jobs/{timed_out['id']}/logs", headers=owner).text.splitlines()[-1]
    assert re.search(r"attempt 1 ended at step \d+ of \d+ \(after \d+ epochs\): failed \(timeout: ran past max_runtime_seconds \(3 s\)\)$", last), last


def test_the_latest_checkpoint_becomes_a_model_with_the_metrics_of_its_step(client, owner, timed_out):
    job_id = timed_out["id"]
    r = client.post(f"/v1/jobs/{job_id}/models", json={"checkpoint": "latest"}, headers=owner)
    assert r.status_code == 201, r.text
    model = r.json()
    assert r.headers["location"].endswith(f"/v1/models/{model['id']}") and model["job_id"] == job_id
    step = int(re.fullmatch(r"out-of-time @ step (\d+)", model["name"]).group(1))
    assert step == client.get(f"/v1/jobs/{job_id}/attempts", headers=owner).json()[-1]["checkpoint_step"]
    assert model["metrics"] == values_at(client, owner, job_id, step) and model["parameter_count"] == 64 * 64 + 64 + 64 * 10 + 10
    # It answers as the job's newest checkpoint does, and keeps answering once the job is gone.
    sample = {"inputs": DIGITS.images[:20].tolist()}
    by_checkpoint = client.post(f"/v1/models/{job_id}/predict", json=sample, params={"checkpoint": "latest"}, headers=owner)
    assert by_checkpoint.headers["kiln-model"] == f"{job_id}@step-{step}"
    by_model = client.post(f"/v1/models/{model['id']}/predict", json=sample, headers=owner)
    assert by_model.status_code == 200 and by_model.headers["kiln-model"] == model["id"]
    assert by_model.json() == by_checkpoint.json()
    assert client.get(f"/v1/jobs/{job_id}", headers=owner).json()["model_id"] is None  # the job's own record is unchanged


def test_the_best_checkpoint_is_the_one_with_the_lowest_val_loss(client, owner, timed_out):
    job_id = timed_out["id"]
    r = client.post(f"/v1/jobs/{job_id}/models", json={"checkpoint": "best"}, headers=owner)
    assert r.status_code == 201, r.text
    model = r.json()
    val_loss = client.get(f"/v1/jobs/{job_id}/metrics", params={"names": "val_loss", "max_points": 10_000},
                          headers=owner).json()["series"]["val_loss"]
    lowest = min(val_loss, key=lambda p: p["value"])
    assert model["name"] == f"out-of-time @ step {lowest['step']}" and model["metrics"]["val_loss"] == lowest["value"]
    assert model["metrics"]["val_accuracy"] > 0.9


def test_what_cannot_become_a_model_is_named(client, owner, auth, timed_out):
    queued = client.post("/v1/jobs", json={**TIMED_OUT_JOB, "name": "waiting"}, headers=owner).json()
    r = client.post(f"/v1/jobs/{queued['id']}/models", json={"checkpoint": "latest"}, headers=owner)
    assert r.status_code == 409 and r.json()["error"]["message"] == f"job {queued['id']} is queued and has not started training: it has no checkpoint"
    client.post(f"/v1/jobs/{queued['id']}/cancel", headers=owner)
    bad = client.post(f"/v1/jobs/{timed_out['id']}/models", json={"checkpoint": "step-3"}, headers=owner)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["body", "checkpoint"]
    other = client.post(f"/v1/jobs/{timed_out['id']}/models", json={"checkpoint": "latest"}, headers=auth)
    assert other.status_code == 404  # another tenant's job is not found
