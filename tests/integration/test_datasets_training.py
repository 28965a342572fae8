"""Upload real data through the API and train on it, with real processes on both backends."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

MNIST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.mark.skipif(not MNIST.exists(), reason="needs ../shared/datasets/mnist")
def test_mnist_idx_upload_trains_lenet5_and_reports_test_accuracy(stack):
    client = stack.new_tenant()
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    files = [("file", (n, open(MNIST / n, "rb"))) for n in names]
    r = client.post("/v1/datasets", data={"name": "mnist", "format": "idx"}, files=files)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["num_samples"], ds["num_test_samples"], ds["sample_shape"]) == (60_000, 10_000, [28, 28])
    assert ds["class_counts"] == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]

    spec = {
        "name": "lenet5-mnist-1-epoch",
        "model": {"architecture": "lenet5"},
        "data": {"dataset": ds["id"], "validation_fraction": 0.0},
        "training": {"epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                     "lr_schedule": {"name": "cosine", "warmup_epochs": 0.2}},
    }
    job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], TERMINAL, timeout=300)
    assert job["state"] == "succeeded", (job, stack.read_logs())
    assert job["metrics"]["test_accuracy"] >= 0.97  # one epoch; ten reach 99.3 % (see bench/mnist_lenet5.py)
    model = client.get(f"/v1/models/{job['model_id']}").json()
    assert model["sample_shape"] == [28, 28] and model["preprocessing"]["resize"] == [32, 32]
    assert abs(model["preprocessing"]["mean"][0] - 0.1307) < 0.002

    # Batch inference over the 10,000 test images, on the worker: the accuracy the training job reported.
    r = client.post("/v1/inference-jobs", json={"model_id": model["id"], "dataset_id": ds["id"], "split": "test"})
    assert r.status_code == 201, r.text
    batch = wait_for(client, r.json()["id"], TERMINAL, timeout=300, resource="inference-jobs")
    assert batch["state"] == "succeeded", (batch, stack.read_logs())
    assert batch["metrics"]["samples"] == 10_000
    assert abs(batch["metrics"]["accuracy"] - job["metrics"]["test_accuracy"]) <= 1e-4, (batch["metrics"], job["metrics"])
    npz = np.load(io.BytesIO(client.get(batch["results"]["npz"]).content), allow_pickle=False)
    assert npz["predictions"].shape == (10_000,) and npz["labels"][0] == "7"  # the first MNIST test image is a 7
    assert client.delete(f"/v1/datasets/{ds['id']}").status_code == 204


def test_a_csv_of_a_tabular_set_trains_an_mlp(stack):
    client = stack.new_tenant()
    wine = load_wine()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*wine.feature_names, "cultivar"])
    for row, target in zip(wine.data, wine.target):
        writer.writerow([*row, wine.target_names[target]])
    r = client.post("/v1/datasets", data={"name": "wine", "format": "csv", "options": '{"label_column": "cultivar"}'},
                    files=[("file", ("wine.csv", out.getvalue().encode()))])
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["class_names"] == ["class_0", "class_1", "class_2"] and ds["sample_shape"] == [13]

    spec = {
        "name": "wine-mlp", "model": {"architecture": "mlp", "params": {"hidden_sizes": [32], "activation": "tanh"}},
        "data": {"dataset": ds["id"], "validation_fraction": 0.3},
        "training": {"epochs": 30, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}}, "seed": 1,
    }
    job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], TERMINAL)
    assert job["state"] == "succeeded", job
    assert job["metrics"]["val_accuracy"] >= 0.85  # chance is 0.40
    sample = [list(map(float, wine.data[0]))]
    answer = client.post(f"/v1/models/{job['model_id']}/predict", json={"inputs": sample}).json()
    assert answer["predictions"] == ["class_0"]


def _epochs_to_reach(client, job_id: str, accuracy: float) -> int | None:
    series = client.get(f"/v1/jobs/{job_id}/metrics", params={"names": "val_accuracy"}).json()["series"]["val_accuracy"]
    return next((p["epoch"] for p in series if p["value"] >= accuracy), None)


def test_fine_tuning_a_model_of_digits_0_4_on_5_9_reaches_accuracy_in_fewer_epochs(stack):
    import io

    import numpy as np
    from sklearn.datasets import load_digits

    client = stack.new_tenant()
    digits = load_digits()

    def upload(name, keep):
        out = io.BytesIO()
        # String labels: the classes are exactly the digits present ("5".."9"), not 0..9 with gaps.
        np.savez(out, x=digits.images[keep].astype(np.float32), y=digits.target[keep].astype(str))
        r = client.post("/v1/datasets", data={"name": name, "format": "npz"}, files=[("file", (f"{name}.npz", out.getvalue()))])
        assert r.status_code == 201, r.text
        return r.json()["id"]

    low, high = upload("digits-0-4", digits.target < 5), upload("digits-5-9", digits.target >= 5)
    training = {"epochs": 6, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9}}
    base = {"name": "base", "model": {"architecture": "lenet5"}, "data": {"dataset": low, "validation_fraction": 0.25}, "training": training}
    source = wait_for(client, client.post("/v1/jobs", json=base).json()["id"], TERMINAL)
    assert source["state"] == "succeeded", source

    scratch = {"name": "scratch", "model": {"architecture": "lenet5"}, "data": {"dataset": high, "validation_fraction": 0.25}, "training": training}
    tuned = {**scratch, "name": "tuned", "model": {"architecture": "lenet5",
             "init_from": {"model_id": source["model_id"], "freeze": ["features"], "reset_head": True}}}
    bad = {**tuned, "model": {**tuned["model"], "init_from": {**tuned["model"]["init_from"], "freeze": ["encoder"]}}}
    r = client.post("/v1/jobs", json=bad)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["body", "model", "init_from", "freeze", 0]
    r = client.post("/v1/jobs", json={**tuned, "model": {**tuned["model"], "architecture": "mlp"}})
    assert r.status_code == 422 and "incompatible init_from" in r.json()["error"]["message"]
    assert f"model {source['model_id']} is a lenet5, not an mlp" in r.json()["error"]["message"]  # grammar a user reads

    scratch_job = wait_for(client, client.post("/v1/jobs", json=scratch).json()["id"], TERMINAL)
    tuned_job = wait_for(client, client.post("/v1/jobs", json=tuned).json()["id"], TERMINAL)
    assert scratch_job["state"] == tuned_job["state"] == "succeeded"
    assert tuned_job["spec"]["model"]["params"] == source["spec"]["model"]["params"]
    target = 0.9
    tuned_epochs = _epochs_to_reach(client, tuned_job["id"], target)
    scratch_epochs = _epochs_to_reach(client, scratch_job["id"], target)
    assert tuned_epochs is not None, "the fine-tuned model never reached the target"
    assert scratch_epochs is None or tuned_epochs < scratch_epochs, (tuned_epochs, scratch_epochs)
