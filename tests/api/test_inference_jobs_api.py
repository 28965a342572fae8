"""Batch-inference jobs through the API, run by the worker's own code in this process
(``run_job``, as a Celery task calls it): results as CSV and NPZ that agree with predict, and
submissions that could not run refused at once."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.api.inline_worker import run_job
from tests.api.test_predict_api import MLP_JOB, train

DIGITS = load_digits()


@pytest.fixture(scope="module")
def model_id(client, owner, settings) -> str:
    return train(client, owner, settings, MLP_JOB)["model_id"]


def test_a_batch_job_predicts_every_sample_as_predict_does_and_reports_accuracy(client, owner, settings, model_id):
    r = client.post("/v1/inference-jobs", json={"model_id": model_id, "dataset_id": "builtin:digits", "batch_size": 100}, headers=owner)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "queued" and job["split"] == "train" and r.headers["location"].endswith(job["id"])
    assert client.get(f"/v1/inference-jobs/{job['id']}/results", headers=owner).status_code == 409

    assert run_job(job["id"], settings) == "succeeded"
    done = client.get(f"/v1/inference-jobs/{job['id']}", headers=owner).json()
    assert done["state"] == "succeeded" and done["progress"] == {"step": 18, "total_steps": 18, "fraction": 1.0}
    assert done["metrics"]["samples"] == 1797

    npz = client.get(done["results"]["npz"], headers=owner)
    assert npz.status_code == 200
    arrays = np.load(io.BytesIO(npz.content), allow_pickle=False)
    predicted = arrays["predictions"]  # names, as labels are: they compare directly
    assert list(arrays["class_names"][arrays["prediction_indices"]]) == list(predicted)
    assert arrays["probabilities"].shape == (1797, 10)
    assert done["metrics"]["accuracy"] == pytest.approx(np.mean(predicted == arrays["labels"])) and done["metrics"]["accuracy"] > 0.5
    assert list(arrays["labels"]) == [str(t) for t in DIGITS.target]

    # The same samples through real-time predict: the same classes.
    answer = client.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:100].tolist()}, headers=owner).json()
    assert list(predicted[:100]) == answer["predictions"]
    assert np.allclose(arrays["probabilities"][:100], answer["probabilities"], atol=1e-6)

    rows = list(csv.DictReader(io.StringIO(client.get(done["results"]["csv"], headers=owner).text)))
    assert len(rows) == 1797 and rows[0]["label"] == "0" and rows[5]["prediction"] == predicted[5]
    assert set(rows[0]) == {"index", "label", "prediction", *(f"p_{i}" for i in range(10))}

    # A batch job has a log, as a training job does: what it read, what it wrote, how it ended.
    lines = client.get(f"/v1/inference-jobs/{job['id']}/logs", headers=owner).text.splitlines()
    assert "attempt 1 started on" in lines[0]
    assert lines[1].endswith(f"predicting the train split of builtin:digits (1797 samples) with model {model_id}, 18 batches of up to 100")
    assert lines[2].endswith(f"wrote predictions.csv and predictions.npz for 1797 samples; accuracy {done['metrics']['accuracy']:.4f} "
                             "against the dataset's labels")
    assert lines[3].endswith("attempt 1 ended at step 18 of 18: succeeded") and len(lines) == 4


def test_batch_jobs_are_listed_apart_from_training_jobs_and_scoped_to_their_tenant(client, owner, auth, model_id):
    job = client.post("/v1/inference-jobs", json={"model_id": model_id, "dataset_id": "builtin:digits"}, headers=owner).json()
    assert job["id"] in [j["id"] for j in client.get("/v1/inference-jobs", headers=owner).json()["items"]]
    assert job["id"] not in [j["id"] for j in client.get("/v1/jobs", headers=owner).json()["items"]]
    assert client.get(f"/v1/jobs/{job['id']}", headers=owner).status_code == 404
    assert client.get(f"/v1/inference-jobs/{job['id']}", headers=auth).status_code == 404
    cancelled = client.post(f"/v1/inference-jobs/{job['id']}/cancel", headers=owner).json()
    assert cancelled["state"] == "cancelled"
    assert client.get(f"/v1/inference-jobs/{job['id']}/logs", headers=owner).text.endswith(" cancelled while queued, before any attempt started\n")
    assert client.get(f"/v1/inference-jobs/{job['id']}/logs", headers=auth).status_code == 404


@pytest.mark.parametrize("body, field, message", [
    ({"model_id": "mdl_nope", "dataset_id": "builtin:digits"}, "model_id", "unknown model"),
    ({"dataset_id": "builtin:digits"}, "model_id", "Field required"),
    ({"model_id": None, "dataset_id": "ds_nope"}, "dataset_id", "unknown dataset"),
    ({"model_id": None, "dataset_id": "builtin:parity"}, "dataset_id", "sample shape"),
    ({"model_id": None, "dataset_id": "builtin:digits", "split": "test"}, "split", "no test split"),
    ({"model_id": None, "dataset_id": "builtin:digits", "batch_size": 0}, "batch_size", "greater than or equal to 1"),
])
def test_a_batch_job_that_could_not_run_is_refused_naming_the_field(client, owner, model_id, body, field, message):
    if "model_id" in body and body["model_id"] is None:
        body = {**body, "model_id": model_id}
    r = client.post("/v1/inference-jobs", json=body, headers=owner)
    assert r.status_code == 422, r.text
    assert message in r.text and r.json()["error"]["details"][0]["loc"][-1] == field


def test_another_tenants_model_cannot_be_used(client, auth, model_id):
    r = client.post("/v1/inference-jobs", json={"model_id": model_id, "dataset_id": "builtin:digits"}, headers=auth)
    assert r.status_code == 422 and "unknown model" in r.text
