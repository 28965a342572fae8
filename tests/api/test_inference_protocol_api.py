"""The Open Inference Protocol's edges through the ASGI app: what a malformed request, a missing
scope or a body past a limit answers (the protocol's {"error": "..."} with Kiln's status), and the
binary tensor data extension byte for byte."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from sklearn.datasets import load_digits

from tests.api.test_predict_api import MLP_JOB, train

DIGITS = load_digits()
X = DIGITS.images[:3].astype(np.float32)


@pytest.fixture(scope="module")
def model_id(client, owner, settings) -> str:
    return train(client, owner, settings, MLP_JOB)["model_id"]


def infer(client, owner, model_id, header: dict, binary: bytes = b"", **headers):
    body = orjson.dumps(header)
    if binary:
        headers["Inference-Header-Content-Length"] = str(len(body))
    return client.post(f"/v2/models/{model_id}/infer", content=body + binary, headers={**owner, **headers})


def error_of(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    return body["error"]


def test_binary_in_and_out_byte_for_byte(client, owner, model_id):
    header = {"inputs": [{"name": "samples", "datatype": "FP32", "shape": [3, 8, 8], "parameters": {"binary_data_size": X.nbytes}}],
              "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                          {"name": "predictions", "parameters": {"binary_data": True}}]}
    r = infer(client, owner, model_id, header, X.tobytes())
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream" and r.headers["kiln-model"] == model_id
    split = int(r.headers["inference-header-content-length"])
    answer = orjson.loads(r.content[:split])
    probs_size = answer["outputs"][0]["parameters"]["binary_data_size"]
    assert answer["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [3, 10], "parameters": {"binary_data_size": 120}}
    probs = np.frombuffer(r.content[split:split + probs_size], dtype="<f4").reshape(3, 10)
    v1 = client.post(f"/v1/models/{model_id}/predict", json={"inputs": X.tolist()}, headers=owner).json()
    np.testing.assert_allclose(probs, v1["probabilities"], atol=1e-6)
    names, rest = [], r.content[split + probs_size:]
    while rest:  # BYTES: each element a little-endian uint32 length, then its bytes
        (n,), rest = struct.unpack("<I", rest[:4]), rest[4:]
        names.append(rest[:n].decode())
        rest = rest[n:]
    assert names == v1["predictions"]


def test_json_in_any_numeric_type_and_json_out(client, owner, model_id):
    header = {"id": "a", "inputs": [{"name": "samples", "datatype": "UINT8", "shape": [3, 8, 8], "data": X.astype(np.uint8).reshape(-1).tolist()}]}
    r = infer(client, owner, model_id, header)
    assert r.status_code == 200 and "inference-header-content-length" not in r.headers
    body = r.json()
    assert body["id"] == "a" and body["model_name"] == model_id and body["model_version"] == "1"
    assert [o["name"] for o in body["outputs"]] == ["probabilities", "predictions"] and len(body["outputs"][1]["data"]) == 3


@pytest.mark.parametrize("header, binary, status, message", [
    ({"inputs": []}, b"", 422, 'a non-empty "inputs" list'),
    ({"inputs": [{"name": "samples", "datatype": "BYTES", "shape": [1]}]}, b"", 422, "datatype 'BYTES' is not a number type"),
    ({"inputs": [{"name": "samples", "datatype": "FP32", "shape": [1, 8, 8], "data": [0.0] * 63}]}, b"", 422, "63 values for shape [1, 8, 8]"),
    ({"inputs": [{"name": "samples", "datatype": "FP32", "shape": [1, 8, 8], "parameters": {"binary_data_size": 255}}]}, b"\0" * 256, 422,
     "binary_data_size 255 does not hold 64 FP32 values"),
    ({"inputs": [{"name": "samples", "datatype": "FP32", "shape": [1, 8, 8], "parameters": {"binary_data_size": 256}}]}, b"\0" * 260, 422,
     "4 bytes after the JSON header belong to no input"),
    ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 8, 8], "data": [0.0] * 64}]}, b"", 422, "this model takes samples"),
    ({"inputs": [{"name": "samples", "datatype": "FP32", "shape": [1, 8, 8], "data": [0.0] * 64}], "outputs": [{"name": "logits"}]}, b"", 422,
     "unknown output(s) logits"),
    ({"inputs": [{"name": "samples", "datatype": "FP32", "shape": [10**9, 8, 8]}]}, b"", 422, "(KILN_MAX_PREDICT_ELEMENTS)"),
])
def test_a_malformed_request_is_named_in_the_protocols_error_body(client, owner, model_id, header, binary, status, message):
    assert message in error_of(infer(client, owner, model_id, header, binary), status)


def test_header_length_keys_scopes_versions_and_the_body_limit(client, owner, new_key, model_id, settings):
    sample = {"inputs": [{"name": "samples", "datatype": "FP32", "shape": [1, 8, 8], "data": [0.0] * 64}]}
    bad_length = client.post(f"/v2/models/{model_id}/infer", content=orjson.dumps(sample),
                              headers={**owner, "Inference-Header-Content-Length": "99999"})
    assert "Inference-Header-Content-Length is '99999'" in error_of(bad_length, 422)
    read_only = new_key(scopes=["read"])
    assert "scope" in error_of(client.post(f"/v2/models/{model_id}/infer", json=sample, headers=read_only), 403)
    assert "no version '2'" in error_of(client.post(f"/v2/models/{model_id}/versions/2/infer", json=sample, headers=owner), 404)
    assert client.post(f"/v2/models/{model_id}/versions/1/infer", json=sample, headers=owner).status_code == 200
    too_big = client.post(f"/v2/models/{model_id}/infer", content=b"{" + b" " * settings.max_request_bytes + b"}", headers=owner)
    assert "KILN_MAX_REQUEST_BYTES" in error_of(too_big, 413)
