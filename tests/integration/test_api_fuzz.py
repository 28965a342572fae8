"""The whole API fuzzed: schemathesis (its CLI, every check) against a real `kiln api` on the
embedded default, over every operation, with real ids supplied so that deep paths are reached: a
classifier, a GAN and an RBM, a dataset, a training job, an inference job, and one of each to
delete (a dataset, a finished job and its model, an inference job, a key). It must find nothing.

The run's configuration is tests/fuzz/schemathesis.toml; the ids are filled in here. A failure
prints schemathesis's report, with a curl command that reproduces each finding.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.test_generative_api import GAN_JOB, RBM_JOB
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[1] / "fuzz" / "schemathesis.toml"
CSV = "\n".join(["a,b,c,label"] + [f"{i % 7},{(i * 3) % 5},{i % 3},{'yes' if i % 2 else 'no'}" for i in range(120)]) + "\n"
TABULAR_JOB = {
    "name": "fuzz-target",
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [8]}},
    "training": {"epochs": 2, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}},
}
# Generous rate limits: the fuzzer should reach the logic behind them (the limits have tests of their own).
# The jobs it submits stay queued: their streams end after a second, as they do after an hour in service.
FUZZ_ENV = {"KILN_RUN_RECONCILER": "false", "KILN_RATE_LIMIT_SUBMIT": "1000/second", "KILN_RATE_LIMIT_UPLOAD": "1000/second",
            "KILN_STREAM_MAX_SECONDS": "1", "KILN_WEBHOOK_ALLOW_PRIVATE": "1"}


def prepare(stack: Stack) -> dict[str, str]:
    """Starts the API, makes one of everything with a worker, stops the worker (the jobs the fuzzer
    submits then stay queued instead of training); returns the ids, as the config's variables."""
    stack.kiln("db", "upgrade")
    stack.start_api()
    worker = stack.start_worker()
    client = stack.new_tenant()
    upload = {"name": (None, "fuzz-csv"), "format": (None, "csv"), "file": ("d.csv", CSV.encode())}
    dataset = client.post("/v1/datasets", files=upload).json()
    doomed = client.post("/v1/datasets", files=upload).json()  # for deleteDataset to delete

    def trained(spec: dict) -> dict:
        job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], {"succeeded", "failed"}, timeout=180)
        assert job["state"] == "succeeded", job
        return job

    job = trained({**TABULAR_JOB, "data": {"dataset": dataset["id"]}})
    gan, rbm = trained(GAN_JOB), trained(RBM_JOB)
    inference = client.post("/v1/inference-jobs", json={"model_id": job["model_id"], "dataset_id": dataset["id"], "split": "train"}).json()
    assert wait_for(client, inference["id"], {"succeeded", "failed"}, timeout=120, resource="inference-jobs")["state"] == "succeeded"
    doomed_key = client.post("/v1/keys", json={"name": "for revokeKey to revoke", "scopes": ["read"]}).json()
    doomed_job = trained({**TABULAR_JOB, "name": "for deleteJob and deleteModel", "data": {"dataset": dataset["id"]}})
    doomed_inference = client.post("/v1/inference-jobs", json={"model_id": job["model_id"], "dataset_id": dataset["id"]}).json()
    assert wait_for(client, doomed_inference["id"], {"succeeded"}, timeout=120, resource="inference-jobs")
    hook = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/kiln", "events": ["job.succeeded"]}).json()
    doomed_hook = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/doomed", "events": ["job.failed"]}).json()
    client.post("/v1/registry", json={"name": "fuzzed"}).raise_for_status()  # a registered name with a version and an alias
    client.post("/v1/registry/fuzzed/versions", json={"model_id": job["model_id"]}).raise_for_status()
    client.put("/v1/registry/fuzzed/aliases/production", json={"version": 1}).raise_for_status()
    stack.processes.remove(worker)
    os.killpg(worker.pid, 15)
    worker.wait(30)
    return {"MODEL_ID": job["model_id"], "GAN_ID": gan["model_id"], "RBM_ID": rbm["model_id"], "DATASET_ID": dataset["id"],
            "DOOMED_DATASET_ID": doomed["id"], "JOB_ID": job["id"], "INFERENCE_JOB_ID": inference["id"],
            "DOOMED_KEY_ID": doomed_key["id"], "DOOMED_JOB_ID": doomed_job["id"], "DOOMED_MODEL_ID": doomed_job["model_id"],
            "DOOMED_INFERENCE_JOB_ID": doomed_inference["id"], "WEBHOOK_ID": hook["id"], "DOOMED_WEBHOOK_ID": doomed_hook["id"],
            "API_KEY": client.headers["authorization"].split()[1]}


def schemathesis(base_url: str, ids: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{base_url}/openapi.json", *extra]
    return subprocess.run(command, env={**os.environ, **ids}, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    stack = Stack("embedded", FUZZ_ENV, tmp_path_factory.mktemp("fuzz"))
    ids = prepare(stack)
    yield stack, ids
    stack.stop()


def test_schemathesis_finds_nothing(target):
    stack, ids = target
    done = schemathesis(stack.base_url, ids)
    print(done.stdout[-20000:])
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:] + "\n" + stack.read_logs()[-5000:]
