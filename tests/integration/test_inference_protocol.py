"""The Open Inference Protocol against a real ``kiln api``, spoken by a client others wrote
(tritonclient, Triton's own): health, server and model metadata, readiness, and infer with JSON
and with binary tensors, over both backends. The answers are /v1 predict's."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from sklearn.datasets import load_digits
from tritonclient.utils import InferenceServerException

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration
DIGITS = load_digits()
JOB = {"model": {"architecture": "mlp", "params": {"hidden_sizes": [32]}}, "data": {"dataset": "builtin:digits"}, "training": {"epochs": 3}}


@pytest.fixture(scope="module")
def served(stack):
    """A tenant's client, its key's header and a trained digits model."""
    client = stack.new_tenant()
    done = wait_for(client, client.post("/v1/jobs", json=JOB).json()["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", stack.read_logs()
    return client, {"Authorization": client.headers["Authorization"]}, done["model_id"]


def triton_client(stack) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(stack.base_url.removeprefix("http://"))


def test_health_metadata_and_readiness_through_tritonclient(stack, served):
    _, auth, model_id = served
    tc = triton_client(stack)
    assert tc.is_server_live() and tc.is_server_ready()
    assert tc.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert tc.is_model_ready(model_id, headers=auth) and tc.is_model_ready(model_id, model_version="1", headers=auth)
    meta = tc.get_model_metadata(model_id, headers=auth)
    assert meta["inputs"] == [{"name": "samples", "datatype": "FP32", "shape": [-1, 8, 8]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}, {"name": "predictions", "datatype": "BYTES", "shape": [-1]}]
    assert not tc.is_model_ready(model_id, model_version="2", headers=auth)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_answers_what_v1_predict_answers(stack, served, binary):
    client, auth, model_id = served
    x = DIGITS.images[:16].astype(np.float32)  # raw units, as /v1 predict takes them
    samples = triton.InferInput("samples", list(x.shape), "FP32")
    samples.set_data_from_numpy(x, binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "predictions")]
    result = triton_client(stack).infer(model_id, [samples], outputs=outputs, headers=auth, request_id="r-1")
    v1 = client.post(f"/v1/models/{model_id}/predict", json={"inputs": x.tolist()}).json()
    np.testing.assert_allclose(result.as_numpy("probabilities"), np.asarray(v1["probabilities"], dtype=np.float32), atol=1e-6)
    names = [n.decode() if isinstance(n, bytes) else n for n in result.as_numpy("predictions")]
    assert names == v1["predictions"] and result.get_response()["id"] == "r-1"


def test_failures_answer_the_protocols_error_body(stack, served):
    _, auth, model_id = served
    tc = triton_client(stack)
    wrong = triton.InferInput("samples", [1, 7], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 7), np.float32))
    with pytest.raises(InferenceServerException) as bad_shape:
        tc.infer(model_id, [wrong], headers=auth)
    assert bad_shape.value.status() == "422" and "every sample must have shape [8, 8]" in bad_shape.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        tc.get_model_metadata("mdl_not_there", headers=auth)
    assert unknown.value.status() == "404" and "mdl_not_there" in unknown.value.message()
    with pytest.raises(InferenceServerException) as no_key:
        tc.get_model_metadata(model_id)
    assert no_key.value.status() == "401"
    other = stack.new_tenant()  # another tenant's key does not find the model
    with pytest.raises(InferenceServerException) as elsewhere:
        tc.get_model_metadata(model_id, headers={"Authorization": other.headers["Authorization"]})
    assert elsewhere.value.status() == "404"
