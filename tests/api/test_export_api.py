"""Export: the ONNX file in onnxruntime and the TorchScript file in torch answer what predict
answers, within 1e-5, on real samples; safetensors is the weights the model serves with."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.numpy import load as load_safetensors
from sklearn.datasets import load_digits

from app.serving.export import ONNX_OPSET
from tests.api.test_predict_api import MLP_JOB, train
from tests.specs import LENET_JOB

DIGITS = load_digits()
SAMPLES = DIGITS.images[:64].astype(np.float32)  # raw, as in the dataset: 8x8, values 0-16


@pytest.fixture(scope="module")
def models_by_arch(client, owner, settings) -> dict[str, str]:
    # lenet5 resizes 8x8 to 32x32 and standardises per channel; the MLP flattens and standardises per pixel.
    lenet = {**LENET_JOB, "training": {**LENET_JOB["training"], "epochs": 3}}
    return {"lenet5": train(client, owner, settings, lenet)["model_id"], "mlp": train(client, owner, settings, MLP_JOB)["model_id"]}


def served_probabilities(client, owner, model_id) -> np.ndarray:
    r = client.post(f"/v1/models/{model_id}/predict", json={"inputs": SAMPLES.tolist()}, headers=owner)
    assert r.status_code == 200, r.text
    return np.array(r.json()["probabilities"], dtype=np.float32)


def download(client, owner, model_id, fmt) -> bytes:
    r = client.get(f"/v1/models/{model_id}/export", params={"format": fmt}, headers=owner)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].endswith(f'{model_id}.{ {"onnx": "onnx", "torchscript": "torchscript.pt", "safetensors": "safetensors"}[fmt] }"')
    return r.content


@pytest.mark.parametrize("arch", ["lenet5", "mlp"])
def test_onnx_in_onnxruntime_answers_what_predict_answers(client, owner, models_by_arch, arch, capfd, caplog):
    model_id = models_by_arch[arch]
    capfd.readouterr()
    data = download(client, owner, model_id, "onnx")
    # The exporters' narration (torchvision operators skipped, opset conversion, each pass) stays out
    # of the API's console: nothing in it an operator could act on.
    console = "".join(capfd.readouterr()) + "".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "torchvision" not in console and "opset" not in console and "onnx_ir" not in console, console
    assert [o.version for o in onnx.load_from_string(data).opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (probs,) = session.run(None, {"samples": SAMPLES})
    assert probs.shape == (64, 10)
    np.testing.assert_allclose(probs, served_probabilities(client, owner, model_id), atol=1e-5, rtol=0)
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert json.loads(meta["kiln.class_names"]) == [str(i) for i in range(10)] and meta["kiln.model_id"] == model_id
    # The batch axis is free: one sample works as well as 64.
    assert session.run(None, {"samples": SAMPLES[:1]})[0].shape == (1, 10)


@pytest.mark.parametrize("arch", ["lenet5", "mlp"])
def test_torchscript_in_torch_answers_what_predict_answers(client, owner, models_by_arch, arch):
    model_id = models_by_arch[arch]
    extra = {"kiln.json": ""}
    module = torch.jit.load(io.BytesIO(download(client, owner, model_id, "torchscript")), _extra_files=extra)
    with torch.no_grad():
        probs = module(torch.from_numpy(SAMPLES)).numpy()
    np.testing.assert_allclose(probs, served_probabilities(client, owner, model_id), atol=1e-5, rtol=0)
    card = json.loads(extra["kiln.json"])
    assert card["kiln.architecture"] == arch and card["kiln.class_names"] == [str(i) for i in range(10)]  # a list, not a JSON string
    assert card["kiln.sample_shape"] == [8, 8] and isinstance(card["kiln.preprocessing"], dict)
    assert module(torch.from_numpy(SAMPLES[:3])).shape == (3, 10)


def test_safetensors_is_the_weights_of_the_model(client, owner, models_by_arch):
    model_id = models_by_arch["mlp"]
    tensors = load_safetensors(download(client, owner, model_id, "safetensors"))
    model = client.get(f"/v1/models/{model_id}", headers=owner).json()
    counted = sum(t.size for name, t in tensors.items() if not name.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert counted == model["parameter_count"]


def test_a_second_download_is_the_same_file(client, owner, models_by_arch):
    model_id = models_by_arch["lenet5"]
    assert download(client, owner, model_id, "onnx") == download(client, owner, model_id, "onnx")


def test_export_refuses_unknown_formats_and_other_tenants(client, owner, auth, models_by_arch):
    model_id = models_by_arch["mlp"]
    bad = client.get(f"/v1/models/{model_id}/export", params={"format": "pickle"}, headers=owner)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["query", "format"]
    assert client.get(f"/v1/models/{model_id}/export", headers=owner).status_code == 422  # format is required
    assert client.get(f"/v1/models/{model_id}/export", params={"format": "onnx"}, headers=auth).status_code == 404
