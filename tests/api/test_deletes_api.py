"""Deleting what a tenant made: finished jobs (their checkpoints and logs; the model if asked),
batch-inference jobs (their results), models no queued or running job needs, datasets. After
deleting everything, nothing of the tenant is left in the artifact store, and its usage is zero."""

from __future__ import annotations

from app.core.artifacts.configured import open_store
from tests.api.inline_worker import run_job
from tests.api.test_quotas_and_rate_limits_api import upload

TINY = {"name": "tiny", "model": {"architecture": "mlp", "params": {"hidden_sizes": [8]}}, "training": {"epochs": 1}}


def everything_of(store, ids: set[str]) -> list[str]:
    return [key for kind in ("jobs", "models", "datasets") for key in store.list(kind) if key.rsplit("/", 1)[-1] in ids]


def test_deleting_everything_a_tenant_made_leaves_nothing_in_the_store(client, new_key, settings):
    auth = new_key()
    store = open_store(settings)
    dataset = upload(client, auth).json()
    job = client.post("/v1/jobs", json={**TINY, "data": {"dataset": dataset["id"]}}, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    model_id = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["model_id"]
    batch = client.post("/v1/inference-jobs", json={"model_id": model_id, "dataset_id": dataset["id"]}, headers=auth).json()

    # In use: a queued batch job needs the model and the dataset; a queued job cannot be deleted.
    assert client.delete(f"/v1/models/{model_id}", headers=auth).status_code == 409
    assert client.delete(f"/v1/inference-jobs/{batch['id']}", headers=auth).status_code == 409
    assert run_job(batch["id"], settings) == "succeeded"
    ids = {dataset["id"], job["id"], model_id, batch["id"]}
    assert len(everything_of(store, ids)) == 4
    assert client.get("/v1/usage", headers=auth).json()["storage"]["total_bytes"] > 0

    assert client.delete(f"/v1/inference-jobs/{batch['id']}", headers=auth).status_code == 204
    assert client.get(f"/v1/inference-jobs/{batch['id']}", headers=auth).status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth).status_code == 204  # the model stays
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).status_code == 404
    assert client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0.0] * dataset["sample_shape"][0]]}, headers=auth).status_code == 200
    assert client.delete(f"/v1/models/{model_id}", headers=auth).status_code == 204
    assert client.get(f"/v1/models/{model_id}", headers=auth).status_code == 404
    assert client.delete(f"/v1/datasets/{dataset['id']}", headers=auth).status_code == 204

    assert everything_of(store, ids) == []
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["storage"]["total_bytes"] == 0 and usage["jobs"]["succeeded"] == 0


def test_a_job_deleted_with_its_model(client, new_key, settings):
    auth = new_key()
    job = client.post("/v1/jobs", json={**TINY, "data": {"dataset": "builtin:digits"}}, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    model_id = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["model_id"]
    assert client.delete(f"/v1/jobs/{job['id']}", params={"delete_model": "true"}, headers=auth).status_code == 204
    assert client.get(f"/v1/models/{model_id}", headers=auth).status_code == 404
    assert everything_of(open_store(settings), {job["id"], model_id}) == []


def test_a_model_a_queued_job_trains_from_cannot_be_deleted(client, new_key, settings):
    auth = new_key()
    job = client.post("/v1/jobs", json={**TINY, "data": {"dataset": "builtin:digits"}}, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    model_id = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["model_id"]
    fine_tune = {**TINY, "model": {"architecture": "mlp", "init_from": {"model_id": model_id}}, "data": {"dataset": "builtin:digits"}}
    queued = client.post("/v1/jobs", json=fine_tune, headers=auth).json()
    r = client.delete(f"/v1/models/{model_id}", headers=auth)
    assert r.status_code == 409 and queued["id"] in r.json()["error"]["message"]
    r = client.delete(f"/v1/jobs/{queued['id']}", headers=auth)
    assert r.status_code == 409 and "cancel it first" in r.json()["error"]["message"]
    client.post(f"/v1/jobs/{queued['id']}/cancel", headers=auth)
    assert client.delete(f"/v1/models/{model_id}", headers=auth).status_code == 204


def test_deleting_is_scoped_to_the_tenant(client, new_key, settings):
    alice, bob = new_key(), new_key()
    job = client.post("/v1/jobs", json={**TINY, "data": {"dataset": "builtin:digits"}}, headers=alice).json()
    assert run_job(job["id"], settings) == "succeeded"
    model_id = client.get(f"/v1/jobs/{job['id']}", headers=alice).json()["model_id"]
    assert client.delete(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    assert client.delete(f"/v1/models/{model_id}", headers=bob).status_code == 404
    assert client.get(f"/v1/models/{model_id}", headers=alice).status_code == 200
