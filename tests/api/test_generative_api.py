"""The generative endpoints through the ASGI app, with a GAN and an RBM trained in this process by
the worker's own code: what they answer, and what they refuse before computing anything."""

from __future__ import annotations

import pytest

from tests.api.inline_worker import run_job

RBM_JOB = {"name": "rbm", "model": {"architecture": "rbm", "params": {"hidden": 16}}, "data": {"dataset": "builtin:digits"},
           "training": {"epochs": 1, "batch_size": 64}}
GAN_JOB = {"name": "gan", "model": {"architecture": "gan", "params": {"latent_dim": 8, "width": 8}}, "data": {"dataset": "builtin:digits"},
           "training": {"epochs": 1, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.0002, "betas": [0.5, 0.999]}}}


def train(client, auth, settings, spec) -> str:
    job = client.post("/v1/jobs", json=spec, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    return client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["model_id"]


@pytest.fixture(scope="module")
def rbm_id(client, owner, settings) -> str:
    return train(client, owner, settings, RBM_JOB)


@pytest.fixture(scope="module")
def gan_id(client, owner, settings) -> str:
    return train(client, owner, settings, GAN_JOB)


def test_transform_and_generate_answer_in_the_datasets_units(client, owner, rbm_id, gan_id):
    r = client.post(f"/v1/models/{rbm_id}/transform", json={"inputs": [[[0] * 8] * 8] * 3}, headers=owner)
    assert r.status_code == 200 and len(r.json()["features"]) == 3 and len(r.json()["features"][0]) == 16
    g = client.post(f"/v1/models/{gan_id}/generate", json={"n": 4, "seed": 1}, headers=owner)
    assert g.status_code == 200 and len(g.json()["samples"]) == 4
    assert client.post(f"/v1/models/{gan_id}/generate", json={"n": 4, "seed": 1}, headers=owner).json() == g.json()
    png = client.post(f"/v1/models/{gan_id}/generate", json={"n": 4}, params={"format": "png"}, headers=owner)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_a_number_too_large_for_a_float_is_a_422_naming_the_sample(client, owner, rbm_id):
    sample = [[0] * 8 for _ in range(8)]
    sample[3][4] = 10**400
    r = client.post(f"/v1/models/{rbm_id}/transform", json={"inputs": [[[0] * 8] * 8, sample]}, headers=owner)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"] == ["body", "inputs", 1]


def test_generate_transform_and_preview_answers_are_bounded_before_computing(settings, owner, rbm_id, gan_id):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    with TestClient(create_app(settings.model_copy(update={"max_response_elements": 64 * 10}))) as c:
        generate = c.post(f"/v1/models/{gan_id}/generate", json={"n": 11}, headers=owner)  # 11 samples of 8x8
        assert generate.status_code == 413 and "KILN_MAX_RESPONSE_ELEMENTS" in generate.json()["error"]["message"]
        assert c.post(f"/v1/models/{gan_id}/generate", json={"n": 10}, headers=owner).status_code == 200
        transform = c.post(f"/v1/models/{rbm_id}/transform", json={"inputs": [[[0] * 8] * 8] * 9}, headers=owner)
        assert transform.status_code == 413, transform.text  # 9 x (16 features + 64 values)
        assert c.post(f"/v1/models/{rbm_id}/transform", json={"inputs": [[[0] * 8] * 8] * 8}, headers=owner).status_code == 200
