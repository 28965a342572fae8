"""Every family trains through the REST API on built-in data, with real processes, and its model
answers its endpoint: predict (classifiers), generate (GAN), transform (RBM)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tests.integration.conftest import make_stack, wait_for

pytestmark = pytest.mark.integration

DIGITS = "builtin:digits"
PARITY = "builtin:parity?length=6"
CLASSIFIERS = {  # name: (params, dataset, epochs, optimizer, the val_accuracy it must beat)
    "mlp": ({"hidden_sizes": [64], "activation": "sigmoid"}, DIGITS, 10, {"name": "adam", "lr": 0.005}, 0.8),
    "lenet5": ({"activation": "tanh", "pooling": "avg"}, DIGITS, 4, {"name": "sgd", "lr": 0.05, "momentum": 0.9}, 0.8),
    "alexnet": ({"width": 0.25, "dropout": 0.2}, DIGITS, 6, {"name": "adam", "lr": 0.002}, 0.5),
    "resnet": ({"depth": 18, "width": 0.125}, DIGITS, 2, {"name": "adam", "lr": 0.002}, 0.5),
    "rnn": ({"cell": "lstm", "hidden_size": 32, "embedding_dim": 8}, PARITY, 12, {"name": "adam", "lr": 0.005}, 0.9),
    "transformer": ({"d_model": 32, "layers": 1, "dropout": 0.0}, DIGITS, 6, {"name": "adam", "lr": 0.005}, 0.7),
    "sequential": ({"layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
                               {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 10}]},
                   DIGITS, 4, {"name": "adam", "lr": 0.005}, 0.8),
}
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def embedded(request, tmp_path_factory):
    stack = make_stack(request, tmp_path_factory, "embedded")
    stack.start_api()
    stack.start_worker()
    yield stack
    stack.stop()


def train(client, name, params, dataset, epochs, optimizer):
    spec = {"name": name, "model": {"architecture": name, "params": params}, "data": {"dataset": dataset, "validation_fraction": 0.2},
            "training": {"epochs": epochs, "batch_size": 32, "optimizer": optimizer}, "seed": 0}
    r = client.post("/v1/jobs", json=spec)
    assert r.status_code == 201, r.text
    return wait_for(client, r.json()["id"], TERMINAL, timeout=300)


def test_architectures_lists_every_family(embedded):
    client = embedded.new_tenant()
    listed = {a["name"]: a for a in client.get("/v1/architectures").json()}
    assert set(listed) == {*CLASSIFIERS, "gan", "rbm"}
    assert listed["gan"]["task"] == "generate" and listed["rbm"]["task"] == "reconstruct"
    assert listed["alexnet"]["submodules"] == ["features", "classifier"]


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_each_classifier_family_trains_by_rest_and_predicts(embedded, name):
    client = embedded.new_tenant()
    params, dataset, epochs, optimizer, beat = CLASSIFIERS[name]
    job = train(client, name, params, dataset, epochs, optimizer)
    assert job["state"] == "succeeded", (job["error"], embedded.read_logs())
    assert job["metrics"]["val_accuracy"] > beat, job["metrics"]
    if dataset == PARITY:
        inputs, body = [[2, 1, 1, 0, 0, 0], [2, 2, 1, 2, 0, 0]], {"lengths": [3, 4]}
        expected = ["odd", "odd"]
    else:
        digits = load_digits()
        inputs, body, expected = digits.images[:50].tolist(), {}, None
    r = client.post(f"/v1/models/{job['model_id']}/predict", json={"inputs": inputs, **body})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    if expected:
        assert predictions == expected
    else:
        assert np.mean([int(p) == t for p, t in zip(predictions, load_digits().target[:50])]) > beat - 0.1
    assert client.post(f"/v1/models/{job['model_id']}/generate", json={"n": 2}).status_code == 422


def test_gan_trains_adversarially_and_generates_arrays_and_png(embedded):
    client = embedded.new_tenant()
    job = train(client, "gan", {"latent_dim": 16, "width": 16}, DIGITS, 5, {"name": "adam", "lr": 0.0005})
    assert job["state"] == "succeeded", (job["error"], embedded.read_logs())
    series = client.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "d_loss,g_loss,d_real_accuracy,d_fake_accuracy"}).json()["series"]
    assert set(series) == {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy"}
    r = client.post(f"/v1/models/{job['model_id']}/generate", json={"n": 6, "seed": 3})
    samples = np.array(r.json()["samples"])
    assert samples.shape == (6, 8, 8)
    assert samples.min() >= -0.5 and samples.max() <= 16.5  # the digits' raw range, 0-16
    again = np.array(client.post(f"/v1/models/{job['model_id']}/generate", json={"n": 6, "seed": 3}).json()["samples"])
    np.testing.assert_allclose(samples, again)
    png = client.post(f"/v1/models/{job['model_id']}/generate", params={"format": "png"}, json={"n": 9})
    assert png.headers["content-type"] == "image/png" and Image.open(io.BytesIO(png.content)).size[0] > 8
    assert client.post(f"/v1/models/{job['model_id']}/predict", json={"inputs": [[[0] * 8] * 8]}).status_code == 422
    # Exports of graphs are for classifiers; a GAN's weights still download.
    onnx = client.get(f"/v1/models/{job['model_id']}/export", params={"format": "onnx"})
    assert onnx.status_code == 409 and "safetensors" in onnx.json()["error"]["message"]
    assert client.get(f"/v1/models/{job['model_id']}/export", params={"format": "safetensors"}).status_code == 200
    batch = client.post("/v1/inference-jobs", json={"model_id": job["model_id"], "dataset_id": DIGITS})
    assert batch.status_code == 422 and "not a classifier" in batch.json()["error"]["message"]


def test_rbm_trains_by_contrastive_divergence_and_transforms(embedded):
    client = embedded.new_tenant()
    job = train(client, "rbm", {"hidden": 32, "k": 1}, DIGITS, 5, {"name": "sgd", "lr": 0.05, "momentum": 0.5})
    assert job["state"] == "succeeded", (job["error"], embedded.read_logs())
    series = client.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "reconstruction_error"}).json()["series"]
    errors = [p["value"] for p in series["reconstruction_error"]]
    assert errors[-1] < errors[0]
    digits = load_digits()
    r = client.post(f"/v1/models/{job['model_id']}/transform", json={"inputs": digits.images[:4].tolist()})
    assert r.status_code == 200, r.text
    features, recon = np.array(r.json()["features"]), np.array(r.json()["reconstructions"])
    assert features.shape == (4, 32) and features.min() >= 0 and features.max() <= 1
    assert recon.shape == (4, 8, 8) and recon.min() >= 0 and recon.max() <= 16


def test_an_rbm_trains_with_adam_and_a_cosine_schedule_by_rest(embedded):
    """The one loop gives every family every optimizer and schedule: an RBM with Adam is a common recipe."""
    client = embedded.new_tenant()
    spec = {"name": "rbm-adam", "model": {"architecture": "rbm", "params": {"hidden": 32}}, "data": {"dataset": DIGITS},
            "training": {"epochs": 5, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "lr_schedule": {"name": "cosine"}}}
    r = client.post("/v1/jobs", json=spec)
    assert r.status_code == 201, r.text
    job = wait_for(client, r.json()["id"], TERMINAL, timeout=300)
    assert job["state"] == "succeeded", (job["error"], embedded.read_logs())
    series = client.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "reconstruction_error,learning_rate"}).json()["series"]
    errors = [p["value"] for p in series["reconstruction_error"]]
    rates = [p["value"] for p in series["learning_rate"]]
    assert errors[-1] < errors[0]
    assert len(rates) == 5 and rates == sorted(rates, reverse=True) and rates[-1] < 0.01


def test_a_sequential_stack_of_embedding_and_lstm_trains_on_token_sequences(embedded):
    client = embedded.new_tenant()
    layers = [{"type": "embedding", "embedding_dim": 8}, {"type": "lstm", "hidden_size": 32}, {"type": "flatten"},
              {"type": "linear", "out_features": 2}]
    job = train(client, "sequential", {"layers": layers}, PARITY, 10, {"name": "adam", "lr": 0.005})
    assert job["state"] == "succeeded", (job["error"], embedded.read_logs())
    assert job["metrics"]["val_accuracy"] > 0.8
    r = client.post(f"/v1/models/{job['model_id']}/predict", json={"inputs": [[2, 1, 1, 2, 2, 1]]})
    assert r.status_code == 200 and r.json()["predictions"] == ["odd"]
    wrong = [{"type": "embedding", "embedding_dim": 8, "num_embeddings": 3}, {"type": "flatten"}, {"type": "linear", "out_features": 2}]
    r = client.post("/v1/jobs", json={"name": "x", "model": {"architecture": "sequential", "params": {"layers": wrong}}, "data": {"dataset": PARITY}})
    assert r.status_code == 422 and "layer 0 (embedding)" in r.json()["error"]["message"]
