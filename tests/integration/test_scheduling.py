"""The scheduler with real workers, on both backends: one worker shared by two tenants takes their
jobs in turns, not in submit order; a job for a device no worker serves waits and says so."""

from __future__ import annotations

import pytest

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

TINY = {"model": {"architecture": "mlp", "params": {"hidden_sizes": [16]}}, "data": {"dataset": "builtin:digits"},
        "training": {"epochs": 1, "batch_size": 256}}
TERMINAL = {"succeeded", "failed", "cancelled"}


def test_one_worker_takes_two_tenants_jobs_in_turns(stack):
    a, b = stack.new_tenant(), stack.new_tenant()
    a_jobs = [a.post("/v1/jobs", json={**TINY, "name": f"a{i}"}).json()["id"] for i in range(5)]
    wait_for(a, a_jobs[0], {"running", "succeeded"}, timeout=60)
    b_jobs = [b.post("/v1/jobs", json={**TINY, "name": f"b{i}"}).json()["id"] for i in range(2)]
    position = b.get(f"/v1/jobs/{b_jobs[0]}").json()["queue_position"]
    done = {job_id: wait_for(client, job_id, TERMINAL, timeout=180) for client, ids in ((a, a_jobs), (b, b_jobs)) for job_id in ids}
    assert all(job["state"] == "succeeded" for job in done.values()), stack.read_logs()
    started = sorted(done, key=lambda job_id: done[job_id]["started_at"])
    # a's first was running when b submitted; then they take turns, whatever the submit order.
    assert started[:5] == [a_jobs[0], b_jobs[0], a_jobs[1], b_jobs[1], a_jobs[2]]
    assert position in (0, 1)  # 0 if a's first was already done, else b's starts right after it


def test_a_job_for_a_device_no_worker_serves_waits_and_says_so(stack):
    client = stack.new_tenant()
    gpu = client.post("/v1/jobs", json={**TINY, "name": "gpu", "resources": {"device": "cuda"}}).json()
    cpu = client.post("/v1/jobs", json={**TINY, "name": "cpu", "resources": {"device": "cpu"}}).json()
    assert wait_for(client, cpu["id"], TERMINAL, timeout=120)["state"] == "succeeded"
    waiting = client.get(f"/v1/jobs/{gpu['id']}").json()
    assert waiting["state"] == "queued" and waiting["waiting_for"] == "a cuda worker"
    queue = client.get("/v1/queue").json()
    by_device = {d["device"]: d for d in queue["devices"]}
    assert by_device["cpu"]["workers"] == 1 and by_device["cuda"]["workers"] == 0 and by_device["cuda"]["queued"] >= 1
    assert client.post(f"/v1/jobs/{gpu['id']}/cancel").json()["state"] == "cancelled"
