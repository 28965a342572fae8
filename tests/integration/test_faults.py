"""No job lost, none run twice: faults made with real processes, on both backends where they apply."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from app.core.artifacts import layout
from tests.integration.conftest import DISTRIBUTED, wait_for
from tests.specs import SHORT_JOB

pytestmark = pytest.mark.integration

# About 2 s an epoch on a 2-core CPU: long enough to strike inside a chosen epoch.
SLOW_JOB = {
    "name": "slow",
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [2048, 2048, 2048], "dropout": 0.1}},
    "data": {"dataset": "builtin:digits", "validation_fraction": 0.2},
    "training": {"epochs": 5, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}},
    "seed": 7,
}
STEPS_PER_EPOCH = 90  # ceil(1437 / 16)
TERMINAL = {"succeeded", "failed", "cancelled"}


def weights(stack, model_id: str) -> dict[str, torch.Tensor]:
    with stack.artifacts().local_copy(layout.model_file(layout.model_prefix(model_id), "safetensors")) as path:
        return load_file(path)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def run_reference(stack, client, spec) -> dict:
    job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], TERMINAL, timeout=180)
    assert job["state"] == "succeeded", job
    return job


def expected_train_loss_points(epochs: int, every: int = 10) -> int:
    """Every 10 steps, plus each epoch's mean at its last step (one point where the two coincide)."""
    total = epochs * STEPS_PER_EPOCH
    return len(set(range(every, total + 1, every)) | {STEPS_PER_EPOCH * e for e in range(1, epochs + 1)})


def point_counts(client, job_id: str) -> dict[str, int]:
    series = client.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
    for name, points in series.items():
        steps = [p["step"] for p in points]
        assert len(steps) == len(set(steps)), f"duplicate points in {name}"
    return {name: len(points) for name, points in series.items()}


def test_sigkill_mid_epoch_3_resumes_from_epoch_2_with_identical_weights(bare_stack):
    stack = bare_stack
    stack.start_api()
    worker = stack.start_worker()
    client = stack.new_tenant()
    job_id = client.post("/v1/jobs", json=SLOW_JOB).json()["id"]
    in_epoch_3 = wait_for(client, job_id, {"running"}, timeout=120, until=lambda j: j["progress"]["step"] >= 2 * STEPS_PER_EPOCH + 20)
    assert in_epoch_3["progress"]["epoch"] == 2
    killed_at = time.time()
    stack.signal_group(worker, signal.SIGKILL)  # the whole group, as the OOM killer would
    worker.wait()
    # Counted from the kill (no worker is left to claim it again): a stall of the whole machine longer
    # than the tests' 3 s lease (CI once saw its clock jump 11 s) may already have cost an attempt.
    killed_attempt = client.get(f"/v1/jobs/{job_id}").json()["attempt"]
    early = client.get(f"/v1/jobs/{job_id}/metrics", params={"names": "val_accuracy"}).json()["series"]["val_accuracy"]

    stack.start_worker()
    job = wait_for(client, job_id, TERMINAL, timeout=180)
    assert job["state"] == "succeeded", (job, stack.read_logs())
    assert job["attempt"] == killed_attempt + 1
    log = client.get(f"/v1/jobs/{job_id}/logs").text
    assert f"attempt {killed_attempt + 1} resumed from the checkpoint at step {2 * STEPS_PER_EPOCH}" in log
    # Epochs 1-2 were not retrained: their points are the first attempt's, untouched.
    late = client.get(f"/v1/jobs/{job_id}/metrics", params={"names": "val_accuracy"}).json()["series"]["val_accuracy"]
    assert late[:2] == early[:2] and all(p["time"] < p2["time"] for p, p2 in zip(early[:2], late[2:]))
    assert [p["epoch"] for p in late] == [1, 2, 3, 4, 5]
    assert killed_at > 0

    reference = run_reference(stack, client, SLOW_JOB)
    assert_same_weights(weights(stack, job["model_id"]), weights(stack, reference["model_id"]))
    assert point_counts(client, job_id) == point_counts(client, reference["id"])


def test_a_message_delivered_twice_runs_one_trainer(bare_stack):
    from app.api.broker import Broker

    stack = bare_stack
    stack.start_api()
    stack.start_worker()
    stack.start_worker()
    client = stack.new_tenant()
    job_id = client.post("/v1/jobs", json={**SLOW_JOB, "training": {**SLOW_JOB["training"], "epochs": 2}}).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=60)
    Broker(stack.settings()).send(job_id, "any")  # the broker redelivers while the job runs
    job = wait_for(client, job_id, TERMINAL, timeout=120)
    assert job["state"] == "succeeded" and job["attempt"] == 1
    deadline = time.monotonic() + 10
    while "nothing this cpu worker may run now" not in stack.worker_logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "nothing this cpu worker may run now" in stack.worker_logs()
    assert stack.worker_logs().count(f"job {job_id}: attempt") == 1
    counts = point_counts(client, job_id)
    assert counts["val_accuracy"] == 2
    assert counts["train_loss"] == expected_train_loss_points(epochs=2)


@pytest.mark.parametrize("bare_stack", [DISTRIBUTED], indirect=True)
def test_redis_flushall_with_three_jobs_queued_loses_none(bare_stack):
    import redis

    stack = bare_stack
    stack.start_api()
    client = stack.new_tenant()
    ids = [client.post("/v1/jobs", json=SHORT_JOB).json()["id"] for _ in range(3)]
    broker = redis.Redis.from_url(stack.env["KILN_BROKER_URL"])
    assert broker.llen(stack.env["KILN_QUEUE_NAME"]) >= 3
    broker.flushall()
    assert broker.llen(stack.env["KILN_QUEUE_NAME"]) == 0
    stack.start_worker()
    for job_id in ids:
        job = wait_for(client, job_id, TERMINAL, timeout=120)
        assert job["state"] == "succeeded" and job["attempt"] == 1


def test_restarting_the_api_does_not_touch_a_running_job(bare_stack):
    stack = bare_stack
    api = stack.start_api()
    stack.start_worker()
    client = stack.new_tenant()
    job_id = client.post("/v1/jobs", json={**SLOW_JOB, "training": {**SLOW_JOB["training"], "epochs": 2}}).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=60)
    stack.signal_group(api, signal.SIGKILL)
    api.wait()
    stack.start_api()
    job = wait_for(client, job_id, TERMINAL, timeout=120)
    assert job["state"] == "succeeded" and job["attempt"] == 1


def test_sigterm_hands_the_job_back_at_once_and_the_next_worker_resumes_mid_epoch(bare_stack):
    stack = bare_stack
    stack.start_api()
    worker = stack.start_worker()
    client = stack.new_tenant()
    spec = {**SLOW_JOB, "training": {**SLOW_JOB["training"], "epochs": 3}}
    job_id = client.post("/v1/jobs", json=spec).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=60, until=lambda j: j["progress"]["step"] >= STEPS_PER_EPOCH + 30)
    stack.signal_group(worker, signal.SIGTERM)
    sent = time.monotonic()
    queued = wait_for(client, job_id, {"queued"}, timeout=10)
    assert time.monotonic() - sent < 2.0
    assert queued["attempt"] == 1
    assert worker.wait(timeout=30) == 0

    stack.start_worker()
    job = wait_for(client, job_id, TERMINAL, timeout=120)
    assert job["state"] == "succeeded" and job["attempt"] == 2
    log = client.get(f"/v1/jobs/{job_id}/logs").text
    assert "stopped by worker shutdown; checkpointed and returned to the queue" in log
    resumed_step = int(log.split("attempt 2 resumed from the checkpoint at step ")[1].split()[0])
    assert resumed_step > STEPS_PER_EPOCH + 30 and resumed_step % STEPS_PER_EPOCH != 0  # mid-epoch, taken on the way out

    reference = run_reference(stack, client, spec)
    assert_same_weights(weights(stack, job["model_id"]), weights(stack, reference["model_id"]))


def test_cancel_of_a_running_job_lands_within_2_s_and_the_worker_goes_on(bare_stack):
    stack = bare_stack
    stack.start_api()
    stack.start_worker()
    client = stack.new_tenant()
    job_id = client.post("/v1/jobs", json=SLOW_JOB).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=60, until=lambda j: j["progress"]["step"] > 0)
    asked = time.monotonic()
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job = wait_for(client, job_id, TERMINAL, timeout=10)
    assert job["state"] == "cancelled" and time.monotonic() - asked < 2.0
    follow = wait_for(client, client.post("/v1/jobs", json=SHORT_JOB).json()["id"], TERMINAL, timeout=60)
    assert follow["state"] == "succeeded"


def _restart_postgres() -> None:
    cluster = sorted(Path("/etc/postgresql").iterdir())[0].name
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"], check=True, timeout=60)


@pytest.mark.parametrize("bare_stack", [DISTRIBUTED], indirect=True)
def test_postgres_restart_while_a_job_runs(bare_stack):
    if not Path("/etc/postgresql").is_dir():
        pytest.skip("needs a local PostgreSQL cluster managed by pg_ctlcluster")
    stack = bare_stack
    stack.start_api()
    stack.start_worker()
    client = stack.new_tenant()
    spec = {**SLOW_JOB, "training": {**SLOW_JOB["training"], "epochs": 3}}
    job_id = client.post("/v1/jobs", json=spec).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=60, until=lambda j: j["progress"]["step"] > 20)
    _restart_postgres()
    job = wait_for(client, job_id, TERMINAL, timeout=180)
    assert job["state"] == "succeeded", (job, stack.read_logs())
    assert job["attempt"] == 1
    counts = point_counts(client, job_id)
    assert counts["val_accuracy"] == 3 and counts["train_loss"] == expected_train_loss_points(epochs=3)
