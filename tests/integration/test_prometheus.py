"""GET /metrics over real processes, on both backends: the numbers move as a job runs and as
predicts are served, and `kiln api --workers 2` reports both processes' counts in one answer."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_digits

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

JOB = {
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [32]}},
    "data": {"dataset": "builtin:digits"},
    "training": {"epochs": 2, "batch_size": 32},
}
TERMINAL = {"succeeded", "failed", "cancelled"}


def scrape(stack) -> list[tuple[str, dict[str, str], float]]:
    """Every sample, read by the parser Prometheus' own client ships; a new connection each time."""
    r = httpx.get(f"{stack.base_url}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(r.text) for s in family.samples]


def value(samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == want for k, want in labels.items()))


def test_metrics_move_as_jobs_run_and_predicts_are_served_across_two_api_processes(bare_stack):
    stack = bare_stack
    stack.start_api("--workers", "2")
    stack.start_worker()
    client = stack.new_tenant()
    before = scrape(stack)

    job = wait_for(client, client.post("/v1/jobs", json=JOB).json()["id"], TERMINAL, timeout=180)
    assert job["state"] == "succeeded", stack.read_logs()
    long = client.post("/v1/jobs", json={**JOB, "training": {"epochs": 500, "batch_size": 8}}).json()["id"]
    wait_for(client, long, {"running"}, timeout=60)
    during = scrape(stack)
    assert value(during, "kiln_jobs", state="running", device="any") == 1
    assert value(during, "kiln_workers_alive", device="cpu") == 1 and value(during, "kiln_workers_busy", device="cpu") == 1
    done = {"device": "any", "state": "succeeded"}
    assert value(during, "kiln_jobs_finished_total", **done) == value(before, "kiln_jobs_finished_total", **done) + 1
    assert value(during, "kiln_job_duration_seconds_count", **done) == value(before, "kiln_job_duration_seconds_count", **done) + 1
    assert value(during, "kiln_job_duration_seconds_sum", **done) > value(before, "kiln_job_duration_seconds_sum", **done)
    # Two jobs started for the first time: the one that ended and the one running.
    waits = value(during, "kiln_job_queue_wait_seconds_count", device="any") - value(before, "kiln_job_queue_wait_seconds_count", device="any")
    assert waits == 2 and value(during, "kiln_job_queue_wait_seconds_bucket", device="any", le="+Inf") == value(
        during, "kiln_job_queue_wait_seconds_count", device="any")
    client.post(f"/v1/jobs/{long}/cancel")
    assert wait_for(client, long, TERMINAL, timeout=60)["state"] == "cancelled"

    key = client.headers["Authorization"]
    samples = load_digits().images[:4].tolist()

    def predict(model_id: str) -> int:  # a connection of its own, so the two processes share the load
        return httpx.post(f"{stack.base_url}/v1/models/{model_id}/predict", json={"inputs": samples}, headers={"Authorization": key},
                          timeout=60).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(predict, [job["model_id"]] * 40 + ["mdl_not_there"] * 3))
    assert statuses == [200] * 40 + [404] * 3
    deadline = time.monotonic() + 10  # each process adds its tallies to the shared counts every second
    while value(scrape(stack), "kiln_predict_latency_seconds_count") - value(before, "kiln_predict_latency_seconds_count") < 43:
        assert time.monotonic() < deadline, scrape(stack)
        time.sleep(0.2)
    for _ in range(6):  # whichever process answers, it counts both
        after = scrape(stack)
        assert value(after, "kiln_predict_requests_total", model=job["model_id"], status="200") == 40
        assert value(after, "kiln_predict_requests_total", model="", status="404") == 3  # an unknown id is no label
        assert value(after, "kiln_predict_latency_seconds_count") - value(before, "kiln_predict_latency_seconds_count") == 43
        assert value(after, "kiln_predict_batch_size_sum") - value(before, "kiln_predict_batch_size_sum") == 40 * 4
        assert value(after, "kiln_model_cache_bytes") > 0
        assert value(after, "kiln_jobs_finished_total", device="any", state="cancelled") >= 1
        assert value(after, "kiln_jobs", state="running") == 0
    assert not any(job["id"] in str(labels) for _, labels, _ in after)  # jobs are counted, never named
