"""Kiln across hosts that share nothing but PostgreSQL, Redis and an S3 server: each "host" here
is a set of real processes with its own KILN_DATA_DIR and no folder in common with the others."""

from __future__ import annotations

import io
import signal
import time

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits

from app.core.artifacts import layout
from tests.integration.conftest import DISTRIBUTED, Stack, backend_env, wait_for
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_faults import SLOW_JOB, STEPS_PER_EPOCH, TERMINAL, point_counts
from tests.specs import SHORT_JOB

pytestmark = pytest.mark.integration


@pytest.fixture
def hosts(request, tmp_path_factory):
    """``hosts("a", **env)``: a new host of one distributed deployment (its database migrated once)."""
    shared = backend_env(request, DISTRIBUTED)
    made: list[Stack] = []

    def host(name: str, **env: str) -> Stack:
        stack = Stack(f"host-{name}", {**shared, **env}, tmp_path_factory.mktemp(f"host-{name}"))
        if not made:
            stack.kiln("db", "upgrade")
        made.append(stack)
        return stack

    yield host
    for stack in made:
        stack.stop()


def same_tenant(client: httpx.Client, other: Stack) -> httpx.Client:
    return httpx.Client(base_url=other.base_url, headers=client.headers, timeout=60)


def weights(stack: Stack, model_id: str) -> dict[str, torch.Tensor]:
    with stack.artifacts().local_copy(layout.model_file(layout.model_prefix(model_id), "safetensors")) as path:
        return load_file(path)


def test_uploaded_on_one_host_trained_on_another_served_from_a_third(hosts):
    a, b, c = hosts("a"), hosts("b"), hosts("c")
    a.start_api()
    c.start_api()
    b.start_worker()
    on_a = a.new_tenant()
    on_c = same_tenant(on_a, c)

    digits = load_digits()
    upload = io.BytesIO()
    np.savez_compressed(upload, x=digits.images.astype(np.float32), y=digits.target)
    r = on_a.post("/v1/datasets", data={"name": "digits", "format": "npz"}, files=[("file", ("digits.npz", upload.getvalue()))])
    assert r.status_code == 201, r.text
    dataset = r.json()
    spec = {**SHORT_JOB, "name": "across", "data": {"dataset": dataset["id"]}}
    job = wait_for(on_c, on_a.post("/v1/jobs", json=spec).json()["id"], TERMINAL, timeout=120)
    assert job["state"] == "succeeded", (job, b.read_logs())

    r = on_c.post(f"/v1/models/{job['model_id']}/predict", json={"inputs": digits.images[:200].tolist()})
    assert r.status_code == 200, r.text
    assert np.mean(np.array(r.json()["predictions"], dtype=int) == digits.target[:200]) > 0.8
    assert "attempt 1 started on" in on_c.get(f"/v1/jobs/{job['id']}/logs").text
    assert on_c.get(f"/v1/datasets/{dataset['id']}/preview", params={"n": 2}).status_code == 200

    # Nothing went through a folder: the API hosts hold no artifacts; the worker host holds the
    # dataset in its cache, once, under its content hash.
    for api_host in (a, c):
        assert not (api_host.data_dir / "artifacts").exists()
    cached = [p for p in (b.data_dir / "cache").iterdir() if not p.name.startswith(".")]
    assert len(cached) == 1 and len(cached[0].name) == 64 and (cached[0] / "train_x.npy").exists()

    # A second job on the dataset finds it in the cache: nothing is fetched again.
    fetched = b.worker_logs().count(f"fetched datasets/{dataset['id']}")
    again = wait_for(on_a, on_a.post("/v1/jobs", json={**spec, "name": "again"}).json()["id"], TERMINAL, timeout=120)
    assert again["state"] == "succeeded"
    assert fetched == 1 and b.worker_logs().count(f"fetched datasets/{dataset['id']}") == 1


def test_a_job_killed_on_one_host_resumes_on_another_exactly(hosts):
    api, first, second = hosts("api"), hosts("worker-1"), hosts("worker-2")
    api.start_api()
    worker = first.start_worker()
    client = api.new_tenant()
    job_id = client.post("/v1/jobs", json=SLOW_JOB).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=120, until=lambda j: j["progress"]["step"] >= 2 * STEPS_PER_EPOCH + 20)
    first.signal_group(worker, signal.SIGKILL)
    worker.wait()

    second.start_worker()
    job = wait_for(client, job_id, TERMINAL, timeout=180)
    assert job["state"] == "succeeded" and job["attempt"] == 2, (job, second.read_logs())
    assert f"attempt 2 resumed from the checkpoint at step {2 * STEPS_PER_EPOCH}" in client.get(f"/v1/jobs/{job_id}/logs").text

    reference = wait_for(client, client.post("/v1/jobs", json=SLOW_JOB).json()["id"], TERMINAL, timeout=180)
    assert reference["state"] == "succeeded"
    resumed, uninterrupted = weights(api, job["model_id"]), weights(api, reference["model_id"])
    assert resumed.keys() == uninterrupted.keys() and all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    assert point_counts(client, job_id) == point_counts(client, reference["id"])
    series = [client.get(f"/v1/jobs/{j}/metrics", params={"names": "val_loss"}).json()["series"]["val_loss"] for j in (job_id, reference["id"])]
    assert [p["value"] for p in series[0]] == [p["value"] for p in series[1]]


def test_a_store_that_goes_away_mid_job_is_ridden_out(hosts, s3_server):
    proxy = TcpProxy(int(s3_server.endpoint.rsplit(":", 1)[1]))
    through_proxy = {"KILN_S3_ENDPOINT_URL": proxy.url, "KILN_STORE_RETRY_SECONDS": "60"}
    host = hosts("flaky", **through_proxy)
    host.start_api()
    host.start_worker()
    client = host.new_tenant()
    job_id = client.post("/v1/jobs", json=SLOW_JOB).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=120, until=lambda j: j["progress"]["step"] >= STEPS_PER_EPOCH // 2)
    proxy.down()  # through the end of epoch 1 and its checkpoint
    time.sleep(8)
    assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "running"
    ready = httpx.get(f"{host.base_url}/readyz", timeout=30)
    assert ready.status_code == 503 and ready.json()["store"] is False
    proxy.up()

    job = wait_for(client, job_id, TERMINAL, timeout=180)
    assert job["state"] == "succeeded" and job["attempt"] == 1, (job, host.read_logs())
    assert "artifact store: could not write" in host.worker_logs()
    r = client.post(f"/v1/models/{job['model_id']}/predict", json={"inputs": load_digits().images[:2].tolist()})
    assert r.status_code == 200, r.text

    reference = wait_for(client, client.post("/v1/jobs", json=SLOW_JOB).json()["id"], TERMINAL, timeout=180)
    ridden, uninterrupted = weights(host, job["model_id"]), weights(host, reference["model_id"])
    assert all(torch.equal(ridden[k], uninterrupted[k]) for k in ridden)


def test_a_store_gone_for_longer_than_the_retry_window_fails_the_job_clearly(hosts, s3_server):
    proxy = TcpProxy(int(s3_server.endpoint.rsplit(":", 1)[1]))
    host = hosts("gone", KILN_S3_ENDPOINT_URL=proxy.url, KILN_STORE_RETRY_SECONDS="3")
    host.start_api()
    host.start_worker()
    client = host.new_tenant()
    job_id = client.post("/v1/jobs", json=SLOW_JOB).json()["id"]
    wait_for(client, job_id, {"running"}, timeout=120, until=lambda j: j["progress"]["step"] >= STEPS_PER_EPOCH // 2)
    proxy.down()
    job = wait_for(client, job_id, TERMINAL, timeout=120)
    assert job["state"] == "failed" and job["error"]["type"] == "unavailable", job
    assert "the artifact store could not write" in job["error"]["message"] and "KILN_STORE_RETRY_SECONDS" in job["error"]["message"]
    proxy.up()
