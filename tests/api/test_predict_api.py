"""Real-time predict through the ASGI app: JSON and image inputs, top_k, micro-batched answers
that equal one-by-one answers, and 4xx/503/504 where they belong. The model is trained in this
process by the worker's own code path (``run_job``) on builtin:digits."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.datasets import load_digits

from app.api.main import create_app
from tests.api.inline_worker import run_job

MLP_JOB = {
    "name": "mlp-digits",
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [64]}},
    "data": {"dataset": "builtin:digits", "validation_fraction": 0.2},
    "training": {"epochs": 8, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.003}},
    "seed": 0,
}
DIGITS = load_digits()


def train(client, auth, settings, spec) -> dict:
    job = client.post("/v1/jobs", json=spec, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    return client.get(f"/v1/jobs/{job['id']}", headers=auth).json()


@pytest.fixture(scope="module")
def model_id(client, owner, settings) -> str:
    return train(client, owner, settings, MLP_JOB)["model_id"]


def png_of(sample: np.ndarray, mode: str = "L", fmt: str = "PNG") -> bytes:
    """A digits sample (8x8, values 0-16) as the picture a user would upload."""
    pixels = np.round(sample * 255 / 16).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "L").convert(mode).save(out, format=fmt)
    return out.getvalue()


def test_json_predict_answers_classes_probabilities_and_top_k(client, owner, model_id):
    r = client.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:100].tolist()}, params={"top_k": 3}, headers=owner)
    assert r.status_code == 200, r.text
    body = r.json()
    probs = np.array(body["probabilities"])
    assert probs.shape == (100, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert [int(p) for p in body["predictions"]] == probs.argmax(1).tolist()
    assert np.mean(np.array([int(p) for p in body["predictions"]]) == DIGITS.target[:100]) > 0.9
    for row, top in zip(probs, body["top_k"]):
        assert len(top) == 3
        assert [t["class"] for t in top] == [str(i) for i in np.argsort(-row)[:3]]
        assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    assert "top_k" not in client.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:1].tolist()}, headers=owner).json()


def test_concurrent_requests_get_the_answers_they_would_get_alone(client, owner, model_id):
    url = f"/v1/models/{model_id}/predict"
    alone = [client.post(url, json={"inputs": [s.tolist()]}, headers=owner).json() for s in DIGITS.images[:48]]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda s: client.post(url, json={"inputs": [s.tolist()]}, headers=owner), DIGITS.images[:48]))
    assert all(r.status_code == 200 for r in together)
    for a, t in zip(alone, together):
        assert t.json()["predictions"] == a["predictions"]
        assert np.allclose(t.json()["probabilities"], a["probabilities"], atol=1e-6)


def test_an_image_file_predicts_like_the_json_sample_it_pictures(client, owner, model_id):
    url = f"/v1/models/{model_id}/predict"
    samples = DIGITS.images[:20]
    as_json = client.post(url, json={"inputs": samples.tolist()}, headers=owner).json()
    files = [("file", (f"{i}.png", png_of(s), "image/png")) for i, s in enumerate(samples)]
    as_png = client.post(url, files=files, headers=owner)
    assert as_png.status_code == 200, as_png.text
    assert as_png.json()["predictions"] == as_json["predictions"]
    # An RGB JPEG, twice the size, is converted to the model's one channel and 8x8.
    big = np.kron(samples[0], np.ones((2, 2)))
    jpeg = client.post(url, files={"file": ("d.jpg", png_of(big, "RGB", "JPEG"), "image/jpeg")}, headers=owner)
    assert jpeg.status_code == 200 and jpeg.json()["predictions"] == as_json["predictions"][:1]


@pytest.mark.parametrize("files, message", [
    ({"file": ("x.gif", b"GIF89a" + b"\0" * 20, "image/gif")}, "not a readable PNG or JPEG"),
    ({"file": ("x.png", b"not an image", "image/png")}, "not a readable PNG or JPEG"),
    ({"picture": ("x.png", png_of(DIGITS.images[0]), "image/png")}, "'file' fields"),
])
def test_bad_image_uploads_are_422_naming_the_problem(client, owner, model_id, files, message):
    r = client.post(f"/v1/models/{model_id}/predict", files=files, headers=owner)
    assert r.status_code == 422 and message in r.json()["error"]["message"], r.text


def test_a_gif_is_refused_by_format(client, owner, model_id):
    out = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(out, format="GIF")
    r = client.post(f"/v1/models/{model_id}/predict", files={"file": ("x.gif", out.getvalue(), "image/gif")}, headers=owner)
    assert r.status_code == 422 and "send PNG or JPEG" in r.json()["error"]["message"]


@pytest.mark.parametrize("body, params, where", [
    (b"{not json", {}, ["body"]),
    (b'[1, 2]', {}, ["body"]),
    (b'{"inputs": []}', {}, ["body", "inputs"]),
    (b'{"inputs": [[0]], "extra": 1}', {}, ["body", "extra"]),
    (b'{"inputs": [[[0, 0], [0, 0]]]}', {}, ["body", "inputs"]),
    (b'{"inputs": [' + str([[0] * 8] * 8).encode() + b"]}", {"top_k": 11}, ["query", "top_k"]),
    (b'{"inputs": [' + str([[0] * 8] * 8).encode() + b"]}", {"top_k": 0}, ["query", "top_k"]),
])
def test_bad_predict_bodies_are_422_naming_the_field(client, owner, model_id, body, params, where):
    r = client.post(f"/v1/models/{model_id}/predict", content=body, params=params, headers={**owner, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"][: len(where)] == where


def test_another_tenant_cannot_predict_with_the_model(client, auth, model_id):
    r = client.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:1].tolist()}, headers=auth)
    assert r.status_code == 404


def serving_client(settings, **changes) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes)))


def test_past_the_queue_bound_a_request_gets_503_with_retry_after(settings, owner, model_id):
    # The first request waits 1 s for company; the queue holds 1 sample, so the second is refused.
    with serving_client(settings, predict_max_queue=1, predict_max_delay_ms=1000, predict_max_batch=64) as c:
        url = f"/v1/models/{model_id}/predict"
        c.post(url, json={"inputs": DIGITS.images[:1].tolist()}, headers=owner)  # loads the model
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.post, url, json={"inputs": DIGITS.images[:1].tolist()}, headers=owner)
            import time

            time.sleep(0.3)
            second = c.post(url, json={"inputs": DIGITS.images[1:2].tolist()}, headers=owner)
            assert first.result().status_code == 200
    assert second.status_code == 503, second.text
    assert second.headers["retry-after"] == "1" and "over capacity" in second.json()["error"]["message"]


def test_a_request_that_waits_past_its_deadline_gets_504(settings, owner, model_id):
    with serving_client(settings, predict_timeout_seconds=0.2, predict_max_delay_ms=5000, predict_max_batch=64) as c:
        r = c.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:1].tolist()}, headers=owner)
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout", r.text


def test_the_json_lane_answers_errors_like_every_other_route(client, owner, model_id):
    url = f"/v1/models/{model_id}/predict"
    sample = {"inputs": DIGITS.images[:1].tolist()}
    missing = client.post(url, json=sample)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    assert client.post(url, json=sample, headers={"Authorization": "Bearer kiln_wrong"}).status_code == 401
    unknown = client.post("/v1/models/mdl_nope/predict", json=sample, headers=owner)
    assert unknown.status_code == 404 and "mdl_nope" in unknown.json()["error"]["message"]
    too_big = client.post(url, content=b'{"inputs": [' + b"0," * 40_000 + b"0]}", headers={**owner, "content-type": "application/json"})
    assert too_big.status_code == 413
    not_int = client.post(url, json=sample, params={"top_k": "abc"}, headers=owner)
    assert not_int.status_code == 422 and not_int.json()["error"]["details"][0]["loc"] == ["query", "top_k"]
    # curl -d @body.json labels JSON as a form; it is read as the JSON it is, here as everywhere.
    import json

    curl = client.post(url, content=json.dumps(sample), headers={**owner, "content-type": "application/x-www-form-urlencoded"})
    assert curl.status_code == 200 and len(curl.json()["predictions"]) == 1


def test_checkpoint_latest_of_a_finished_job_is_its_model(client, owner, model_id):
    job_id = client.get(f"/v1/models/{model_id}", headers=owner).json()["job_id"]
    sample = {"inputs": DIGITS.images[:5].tolist()}
    by_job = client.post(f"/v1/models/{job_id}/predict", json=sample, params={"checkpoint": "latest"}, headers=owner)
    by_model = client.post(f"/v1/models/{model_id}/predict", json=sample, headers=owner)
    assert by_job.status_code == 200 and by_job.headers["kiln-model"] == by_model.headers["kiln-model"] == model_id
    assert by_job.json() == by_model.json()
    bad = client.post(f"/v1/models/{model_id}/predict", json=sample, params={"checkpoint": "best"}, headers=owner)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["query", "checkpoint"]


def test_checkpoint_latest_is_scoped_to_the_tenant(client, owner, auth, model_id):
    """Another tenant's job is not found, with or without checkpoint=latest, though its checkpoints exist."""
    job_id = client.get(f"/v1/models/{model_id}", headers=owner).json()["job_id"]
    sample = {"inputs": DIGITS.images[:1].tolist()}
    for ref in (job_id, model_id):
        r = client.post(f"/v1/models/{ref}/predict", json=sample, params={"checkpoint": "latest"}, headers=auth)
        assert r.status_code == 404, r.text
        assert client.post(f"/v1/models/{ref}/predict", json=sample, headers=auth).status_code == 404


def test_per_model_serving_options_are_validated_stored_and_applied(settings, owner, auth, model_id):
    # A deadline of 0.3 s: the default 2 ms wait answers; a model told to wait 2 s for company does not.
    with serving_client(settings, predict_timeout_seconds=0.3) as c:
        url = f"/v1/models/{model_id}/predict"
        sample = {"inputs": DIGITS.images[:1].tolist()}
        assert c.post(url, json=sample, headers=owner).status_code == 200
        r = c.patch(f"/v1/models/{model_id}", json={"serving": {"max_batch_size": 64, "max_delay_ms": 1000}}, headers=owner)
        assert r.status_code == 200 and r.json()["serving"] == {"max_batch_size": 64, "max_delay_ms": 1000.0}
        assert c.post(url, json=sample, headers=owner).status_code == 504
        # PATCH merges (RFC 7396): a field left out keeps its value, null returns one to the default.
        merged = c.patch(f"/v1/models/{model_id}", json={"serving": {"max_delay_ms": 900}}, headers=owner).json()["serving"]
        assert merged == {"max_batch_size": 64, "max_delay_ms": 900.0}
        assert c.patch(f"/v1/models/{model_id}", json={"serving": {}}, headers=owner).json()["serving"] == merged
        cleared = c.patch(f"/v1/models/{model_id}", json={"serving": {"max_batch_size": None, "max_delay_ms": None}}, headers=owner)
        assert cleared.json()["serving"] == {"max_batch_size": None, "max_delay_ms": None}
        assert c.post(url, json=sample, headers=owner).status_code == 200

        bad = c.patch(f"/v1/models/{model_id}", json={"serving": {"max_batch_size": 0}}, headers=owner)
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"][-1] == "max_batch_size"
        assert c.patch(f"/v1/models/{model_id}", json={"serving": {"batch": 3}}, headers=owner).status_code == 422
        assert c.patch(f"/v1/models/{model_id}", json={"serving": {}}, headers=auth).status_code == 404


def test_concurrent_first_requests_load_a_model_once_and_the_cache_evicts_by_bytes(client, settings, model_id):
    from dataclasses import replace

    from app.core.artifacts.configured import open_store
    from app.core.db.tables import TrainedModel
    from app.serving.cache import ModelCache
    from app.serving.loading import servable_model

    with client.app.state.sessions() as session:
        servable = servable_model(session.get(TrainedModel, model_id))
    cache = ModelCache(open_store(settings), max_bytes=10**9)
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: cache.get(servable), range(8)))
    assert all(m is loaded[0] for m in loaded) and len(cache) == 1  # one load, shared by all eight

    # A cache one model big keeps only the newest of two.
    small = ModelCache(open_store(settings), max_bytes=loaded[0].nbytes)
    copy = replace(servable, id="mdl_copy")
    small.get(servable)
    small.get(copy)
    assert small.cached(servable.id) is None and small.cached("mdl_copy") is not None


def test_a_multipart_predict_is_bounded_in_files_and_in_decoded_values_before_decoding(settings, owner, model_id):
    """Ten thousand 1x1 PNGs against a large model asked for ~120 GB: files and the values they
    decode to are counted before any is decoded (and decoding runs off the event loop)."""
    tiny = png_of(np.zeros((1, 1)))
    with serving_client(settings, max_predict_files=4, max_predict_elements=64 * 5) as c:
        url = f"/v1/models/{model_id}/predict"
        five = [("file", (f"{i}.png", tiny, "image/png")) for i in range(5)]
        r = c.post(url, files=five, headers=owner)
        assert r.status_code == 413 and "KILN_MAX_PREDICT_FILES" in r.json()["error"]["message"], r.text
        r = c.post(url, files=five[:4], headers=owner)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 4
    with serving_client(settings, max_predict_elements=64 * 3) as c:  # an 8x8 digit is 64 values
        r = c.post(f"/v1/models/{model_id}/predict", files=[("file", (f"{i}.png", tiny, "image/png")) for i in range(4)], headers=owner)
        assert r.status_code == 413 and "KILN_MAX_PREDICT_ELEMENTS" in r.json()["error"]["message"], r.text
        assert c.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:4].tolist()}, headers=owner).status_code == 413


def test_an_answer_larger_than_the_limit_is_refused_before_it_is_computed(settings, owner, model_id):
    with serving_client(settings, max_response_elements=10 * 5) as c:  # ten probabilities a sample
        r = c.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:6].tolist()}, headers=owner)
        assert r.status_code == 413 and "KILN_MAX_RESPONSE_ELEMENTS" in r.json()["error"]["message"], r.text
        assert c.post(f"/v1/models/{model_id}/predict", json={"inputs": DIGITS.images[:5].tolist()}, headers=owner).status_code == 200


def npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def test_a_npy_body_answers_as_json_does_and_what_is_not_samples_is_named(client, owner, model_id, settings):
    url, headers = f"/v1/models/{model_id}/predict", {**owner, "content-type": "application/x-npy"}
    as_json = client.post(url, json={"inputs": DIGITS.images[:4].tolist()}, headers=owner).json()
    for dtype in (np.float32, np.float64, np.uint8):  # any numeric type, in the dataset's raw units
        r = client.post(url, content=npy(DIGITS.images[:4].astype(dtype)), headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == as_json["predictions"]
    np.testing.assert_allclose(client.post(url, content=npy(DIGITS.images[:4]), headers=headers).json()["probabilities"],
                               as_json["probabilities"], atol=1e-6)
    refused = {
        "not a .npy file": b"not an array",
        "not numbers": npy(np.array([{"a": 1}], dtype=object)),  # refused from its header: nothing is unpickled
        "expected samples of shape [8, 8]": npy(np.zeros((2, 7), np.float32)),
        "truncated or padded": npy(np.zeros((2, 8, 8), np.float32))[:-4],
        "samples per request": npy(np.zeros((settings.max_predict_samples + 1, 1), np.uint8)),  # counted before its shape
    }
    for why, body in refused.items():
        r = client.post(url, content=body, headers=headers)
        error = r.json()["error"]
        assert r.status_code in (413, 422) and why in error["message"] + str(error["details"]), (why, r.text)
