"""Deleting through real processes, on both backends (a folder; an S3 server): after a tenant
deletes every job, model and dataset it made, the store holds nothing of it; a folder no row owns
is collected by the reconciler of a running API."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from sklearn.datasets import load_digits

from app.core.artifacts import layout
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration
TERMINAL = {"succeeded", "failed", "cancelled"}


def test_after_deleting_everything_the_store_holds_nothing_of_the_tenant(stack):
    client = stack.new_tenant()
    digits = load_digits()
    upload = io.BytesIO()
    np.savez_compressed(upload, x=digits.images[:400].astype(np.float32), y=digits.target[:400])
    dataset = client.post("/v1/datasets", data={"name": "d", "format": "npz"}, files=[("file", ("d.npz", upload.getvalue()))]).json()
    spec = {"name": "j", "model": {"architecture": "mlp", "params": {"hidden_sizes": [16]}}, "data": {"dataset": dataset["id"]},
            "training": {"epochs": 2}}
    job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], TERMINAL, timeout=120)
    assert job["state"] == "succeeded", stack.read_logs()
    batch = client.post("/v1/inference-jobs", json={"model_id": job["model_id"], "dataset_id": dataset["id"]}).json()
    assert wait_for(client, batch["id"], TERMINAL, timeout=120, resource="inference-jobs")["state"] == "succeeded"
    ids = {dataset["id"], job["id"], job["model_id"], batch["id"]}
    store = stack.artifacts()

    def held() -> list[str]:
        return [key for kind in ("jobs", "models", "datasets") for key in store.list(kind) if key.rsplit("/", 1)[-1] in ids]

    assert len(held()) == 4
    assert client.delete(f"/v1/inference-jobs/{batch['id']}").status_code == 204
    assert client.delete(f"/v1/jobs/{job['id']}", params={"delete_model": "true"}).status_code == 204
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert held() == []
    assert client.get("/v1/usage").json()["storage"]["total_bytes"] == 0


def test_the_reconciler_collects_a_folder_no_row_owns(bare_stack):
    bare_stack.env |= {"KILN_ORPHAN_SWEEP_SECONDS": "1", "KILN_ORPHAN_GRACE_SECONDS": "2"}
    store = bare_stack.artifacts()
    store.write_bytes(layout.model_file(layout.model_prefix("mdl_orphan"), "card"), b"{}")
    bare_stack.start_api()
    deadline = time.monotonic() + 30
    while store.list("models") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.list("models") == [], bare_stack.read_logs()
    assert "collected 1 orphaned folders: models/mdl_orphan" in bare_stack.read_logs()
