"""A user's path through the service, with real processes: submit, poll, read metrics, predict."""

import json
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

from app.core.artifacts import layout
from tests.integration.conftest import wait_for
from tests.specs import LENET_JOB

pytestmark = pytest.mark.integration

LONG_MLP_JOB = {
    "name": "long",
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [256, 256]}},
    "data": {"dataset": "builtin:digits"},
    "training": {"epochs": 1000, "batch_size": 8, "optimizer": {"name": "sgd", "lr": 0.01}},
}


def test_lenet5_on_digits_succeeds_and_predicts_all_1797_digits(stack):
    client = stack.new_tenant()
    r = client.post("/v1/jobs", json=LENET_JOB)
    assert r.status_code == 201, r.text
    job = wait_for(client, r.json()["id"], {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded", (job["error"], stack.read_logs())
    assert job["attempt"] == 1
    timing = {k: job["progress"].pop(k) for k in ("elapsed_seconds", "eta_seconds")}
    assert job["progress"] == {"epoch": 10, "epochs": 10, "step": 230, "total_steps": 230, "fraction": 1.0}
    assert timing["eta_seconds"] == 0 and 0 < timing["elapsed_seconds"] < 600
    assert job["metrics"]["val_accuracy"] >= 0.93
    assert job["started_at"] <= job["finished_at"]

    series = client.get(f"/v1/jobs/{job['id']}/metrics").json()["series"]
    for name in ("train_loss", "val_loss", "val_accuracy", "learning_rate", "samples_per_second", "epoch_seconds"):
        assert name in series, name
    assert [p["epoch"] for p in series["val_accuracy"]] == list(range(1, 11))
    assert len(series["train_loss"]) >= 230 // 10
    assert series["val_accuracy"][-1]["value"] == job["metrics"]["val_accuracy"]
    only = client.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "val_loss", "since_step": 115}).json()["series"]
    assert list(only) == ["val_loss"] and all(p["step"] > 115 for p in only["val_loss"])

    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert model["architecture"] == "lenet5" and model["job_id"] == job["id"]
    assert model["input_shape"] == [1, 32, 32] and model["sample_shape"] == [8, 8]
    assert model["class_names"] == [str(d) for d in range(10)]
    assert model["preprocessing"]["resize"] == [32, 32]
    assert model["metrics"]["val_accuracy"] == job["metrics"]["val_accuracy"]
    assert [m["id"] for m in client.get("/v1/models").json()["items"]] == [model["id"]]

    digits = load_digits()
    answer = client.post(f"/v1/models/{model['id']}/predict", json={"inputs": digits.images.tolist()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    predicted = np.array([int(p) for p in body["predictions"]])
    assert (predicted == digits.target).mean() >= 0.93
    probs = np.array(body["probabilities"])
    assert probs.shape == (1797, 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)

    bad = client.post(f"/v1/models/{model['id']}/predict", json={"inputs": [[[0] * 8] * 7]})
    assert bad.status_code == 422 and "[8, 8]" in bad.json()["error"]["message"]
    bad = client.post(f"/v1/models/{model['id']}/predict", json={"inputs": [[["a"] * 8] * 8]})
    assert bad.status_code == 422
    # The worker's console holds Kiln's lines, not warnings nobody can act on (these tests run as root).
    assert "superuser privileges" not in stack.worker_logs() and "not writable" not in stack.worker_logs()


def test_cancel_stops_a_running_job_and_the_worker_takes_the_next(stack):
    client = stack.new_tenant()
    long_id = client.post("/v1/jobs", json=LONG_MLP_JOB).json()["id"]
    running = wait_for(client, long_id, {"running"}, timeout=60)
    assert running["state"] == "running" and running["cancel_requested"] is False
    asked = client.post(f"/v1/jobs/{long_id}/cancel").json()
    assert asked["state"] == "running" and asked["cancel_requested"] is True  # said at once; it lands at the next heartbeat
    cancelled = wait_for(client, long_id, {"cancelled", "failed", "succeeded"}, timeout=10)
    assert cancelled["state"] == "cancelled" and cancelled["cancel_requested"] is False
    assert cancelled["model_id"] is None
    states = [json.loads(line.removeprefix("data: ")) for line in client.get(f"/v1/jobs/{long_id}/events").text.splitlines()
              if line.startswith("data: ") and '"state"' in line and '"points"' not in line]
    assert {"state": "running", "attempt": 1, "cancel_requested": True} in states and states[-1] == {"state": "cancelled"}
    log = client.get(f"/v1/jobs/{long_id}/logs").text
    assert " cancel asked for; attempt 1 stops at its worker's next heartbeat\n" in log
    assert re.search(r" attempt 1 ended at step \d+ of \d+(?: \(after \d+ epochs?\))?: cancelled, as asked\n$", log), log

    next_job = client.post("/v1/jobs", json={**LENET_JOB, "training": {**LENET_JOB["training"], "epochs": 1}}).json()
    assert wait_for(client, next_job["id"], {"succeeded", "failed"})["state"] == "succeeded"


def test_a_failing_job_is_failed_with_a_readable_error_and_its_traceback_logged(stack):
    client = stack.new_tenant()
    exploding = {
        "name": "explodes",
        "model": {"architecture": "mlp", "params": {"hidden_sizes": [64]}},
        "data": {"dataset": "builtin:digits"},
        "training": {"epochs": 3, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 10, "momentum": 0.99}},
    }
    job = wait_for(client, client.post("/v1/jobs", json=exploding).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "failed"
    assert job["error"]["type"] == "non_finite_loss"
    assert "step" in job["error"]["message"]
    assert "NonFiniteLoss" in client.get(f"/v1/jobs/{job['id']}/logs").text


def test_two_tenants_cannot_see_each_others_jobs_models_or_metrics(stack):
    alice, bob = stack.new_tenant(), stack.new_tenant()
    job = wait_for(alice, alice.post("/v1/jobs", json={**LENET_JOB, "training": {**LENET_JOB["training"], "epochs": 1}}).json()["id"], {"succeeded", "failed"})
    assert job["state"] == "succeeded"
    model_id = job["model_id"]
    assert bob.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert bob.get(f"/v1/jobs/{job['id']}/metrics").status_code == 404
    assert bob.get(f"/v1/models/{model_id}").status_code == 404
    assert bob.post(f"/v1/models/{model_id}/predict", json={"inputs": [[[0] * 8] * 8]}).status_code == 404
    assert bob.get("/v1/jobs").json()["items"] == [] and bob.get("/v1/models").json()["items"] == []
    assert alice.post(f"/v1/models/{model_id}/predict", json={"inputs": [[[0] * 8] * 8]}).status_code == 200


def test_a_job_past_its_max_runtime_fails_with_reason_timeout_and_keeps_its_checkpoint(stack):
    client = stack.new_tenant()
    spec = {**LONG_MLP_JOB, "training": {**LONG_MLP_JOB["training"], "max_runtime_seconds": 1}}
    job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], {"succeeded", "failed", "cancelled"})
    assert job["state"] == "failed" and job["error"]["type"] == "timeout"
    assert "max_runtime_seconds" in job["error"]["message"]
    checkpoints = stack.artifacts().list(layout.checkpoints_prefix(job["id"]))
    assert any(layout.step_of(key) is not None for key in checkpoints)
    # What it had learnt is a model one call away, through every backend's store.
    made = client.post(f"/v1/jobs/{job['id']}/models", json={"checkpoint": "latest"})
    assert made.status_code == 201, made.text
    sample = {"inputs": load_digits().images[:8].tolist()}
    assert client.post(f"/v1/models/{made.json()['id']}/predict", json=sample).json() == \
        client.post(f"/v1/models/{job['id']}/predict", json=sample, params={"checkpoint": "latest"}).json()


def test_a_job_still_training_answers_predict_from_its_newest_checkpoint(stack):
    client = stack.new_tenant()
    digits = load_digits()
    sample = {"inputs": digits.images[:50].tolist()}
    job_id = client.post("/v1/jobs", json=LONG_MLP_JOB).json()["id"]
    url = f"/v1/models/{job_id}/predict"
    early = client.post(url, json=sample, params={"checkpoint": "latest"})
    assert early.status_code == 409, early.text  # queued, or still in its first epoch: nothing to answer from yet
    assert client.post(url, json=sample).status_code == 404  # without checkpoint=latest a job id is no model

    # The first checkpoint lands at the end of epoch 1; the job keeps training.
    wait_for(client, job_id, {"running"}, timeout=60, until=lambda j: j["progress"]["epoch"] >= 2)
    answer = client.post(url, json=sample, params={"checkpoint": "latest"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["kiln-model"].startswith(f"{job_id}@step-")
    predictions = [int(p) for p in answer.json()["predictions"]]
    assert np.mean(np.array(predictions) == digits.target[:50]) > 0.5  # it has learnt something already
    assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"

    other = stack.new_tenant()
    assert other.post(url, json=sample, params={"checkpoint": "latest"}).status_code == 404
    client.post(f"/v1/jobs/{job_id}/cancel")
    assert wait_for(client, job_id, {"cancelled", "failed", "succeeded"}, timeout=20)["state"] == "cancelled"
