"""The model registry through the ASGI app: names, versions, aliases that move a moment after they
are moved (the time every API process takes to warm the new version), their history, and serving
by name on /v1 and /v2. Two real models trained in-process by the worker's own code."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from sklearn.datasets import load_digits

from tests.api.test_predict_api import MLP_JOB, train

DIGITS = load_digits()
SAMPLE = {"inputs": DIGITS.images[:2].tolist()}
V2 = {"inputs": [{"name": "samples", "datatype": "FP32", "shape": [1, 8, 8], "data": DIGITS.images[0].reshape(-1).tolist()}]}


@pytest.fixture(scope="module")
def two_models(client, owner, settings) -> list[str]:
    return [train(client, owner, settings, {**MLP_JOB, "name": f"v{i}", "seed": i})["model_id"] for i in (1, 2)]


@pytest.fixture(scope="module")
def digits(client, owner, two_models) -> str:
    assert client.post("/v1/registry", json={"name": "digits"}, headers=owner).status_code == 201
    for model_id in two_models:
        assert client.post("/v1/registry/digits/versions", json={"model_id": model_id}, headers=owner).status_code == 201
    return "digits"


def answered(r) -> str:
    assert r.status_code == 200, r.text
    return r.headers["kiln-model-version"]


def test_names_and_versions_are_checked_and_listed(client, owner, auth, digits, two_models):
    registered = client.get("/v1/registry/digits", headers=owner).json()
    assert [(v["version"], v["model_id"]) for v in registered["versions"]] == [(1, two_models[0]), (2, two_models[1])]
    assert client.post("/v1/registry", json={"name": "digits"}, headers=owner).status_code == 409
    for bad in ("Digits", "mdl_x", "a@b", ""):
        r = client.post("/v1/registry", json={"name": bad}, headers=owner)
        assert r.status_code == 422, (bad, r.text)
    assert client.post("/v1/registry/digits/versions", json={"model_id": two_models[0]}, headers=auth).status_code == 404  # not its name
    client.post("/v1/registry", json={"name": "mine"}, headers=auth)
    other = client.post("/v1/registry/mine/versions", json={"model_id": two_models[0]}, headers=auth)
    assert other.status_code == 422 and "unknown model" in other.json()["error"]["message"]  # not its model
    assert [r["name"] for r in client.get("/v1/registry", headers=owner).json()["items"]] == ["digits"]


def test_a_name_answers_from_its_newest_version_until_it_has_a_production_alias(client, owner, digits, two_models, settings):
    assert answered(client.post("/v1/models/digits/predict", json=SAMPLE, headers=owner)) == "digits@2"
    assert answered(client.post("/v1/models/digits@1/predict", json=SAMPLE, headers=owner)) == "digits@1"
    first = client.put("/v1/registry/digits/aliases/production", json={"version": 1}, headers=owner).json()
    assert first["version"] == 1 and first["previous_version"] is None  # a new alias answers at once: nothing to warm past
    r = client.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)
    assert answered(r) == "digits@1" and r.headers["kiln-model"] == two_models[0]
    time.sleep(settings.alias_poll_seconds + 0.3)  # the bare name's route (made above) follows the new alias at its next poll
    v2 = client.post("/v2/models/digits/infer", json=V2, headers=owner)  # no version: the production alias
    assert answered(v2) == "digits@1" and v2.json()["model_version"] == "1"
    assert client.get("/v2/models/digits/versions/2", headers=owner).json()["versions"] == ["2"]
    assert client.get("/v2/models/digits", headers=owner).json()["versions"] == ["1", "2"]  # every version one may ask for
    assert client.get("/v2/models/digits/versions/9", headers=owner).status_code == 404
    missing = client.post("/v1/models/digits@staging/predict", json=SAMPLE, headers=owner)
    assert missing.status_code == 404 and "no alias 'staging'" in missing.json()["error"]["message"]


def test_a_move_takes_effect_after_the_switch_delay_and_is_kept_in_the_history(client, owner, digits, settings):
    client.put("/v1/registry/digits/aliases/production", json={"version": 1}, headers=owner)
    time.sleep(settings.alias_switch_seconds + settings.alias_poll_seconds)  # whatever an earlier move left pending is done
    assert answered(client.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)) == "digits@1"
    moved = client.put("/v1/registry/digits/aliases/production", json={"version": 2}, headers=owner).json()
    assert moved["version"] == 2 and moved["previous_version"] == 1
    effective = datetime.fromisoformat(moved["effective_at"]).timestamp()
    # Until its moment the alias answers from version 1 (every process warms version 2 meanwhile); then from 2.
    while time.time() < effective - 0.3:
        assert answered(client.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)) == "digits@1"
        time.sleep(0.1)
    time.sleep(0.6 + settings.alias_poll_seconds)
    assert answered(client.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)) == "digits@2"
    history = client.get("/v1/registry/digits/aliases/production/history", headers=owner).json()
    assert [(m["version"], m["previous_version"]) for m in history[:2]] == [(2, 1), (1, history[1]["previous_version"])]
    assert history[0]["key_id"] and history[0]["effective_at"] == moved["effective_at"]


def test_a_registered_model_cannot_be_deleted_and_a_bad_move_is_named(client, owner, digits, two_models):
    r = client.delete(f"/v1/models/{two_models[0]}", headers=owner)
    assert r.status_code == 409 and "registered as digits@1" in r.json()["error"]["message"]
    assert client.put("/v1/registry/digits/aliases/production", json={"version": 7}, headers=owner).status_code == 404
    bad_alias = client.put("/v1/registry/digits/aliases/Prod!", json={"version": 1}, headers=owner)
    assert bad_alias.status_code == 422 and bad_alias.json()["error"]["details"][0]["loc"] == ["path", "alias"]


def test_a_name_holds_at_most_KILN_MAX_MODEL_VERSIONS_versions(client, owner, digits, two_models, settings):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    with TestClient(create_app(settings.model_copy(update={"max_model_versions": 2}))) as capped:
        r = capped.post("/v1/registry/digits/versions", json={"model_id": two_models[0]}, headers=owner)
        assert r.status_code == 413 and "KILN_MAX_MODEL_VERSIONS" in r.json()["error"]["message"], r.text
    assert [v["version"] for v in client.get("/v1/registry/digits", headers=owner).json()["versions"]] == [1, 2]  # nothing added


def test_serving_preload_loads_an_alias_at_start(client, owner, digits, two_models, settings):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    client.put("/v1/registry/digits/aliases/production", json={"version": 1}, headers=owner)
    time.sleep(settings.alias_switch_seconds)  # the move has taken effect
    tenant = "owner-test_registry_api"  # the owner fixture's tenant (named after this module)
    preloading = settings.model_copy(update={"serving_preload": f"{tenant}/digits@production, nobody/x@production"})
    with TestClient(create_app(preloading)) as fresh:
        # Loaded before the first request; an entry that names nothing is skipped with a warning, not fatal.
        assert fresh.app.state.serving.cache.cached(two_models[0]) is not None
        assert answered(fresh.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)) == "digits@1"


def test_a_process_whose_poller_fell_behind_reads_the_route_itself_before_answering(client, owner, digits, settings):
    """An API process whose poller has not run since it routed the name (here: never, an hour's
    poll) still answers from the version the alias points at: an old reading is not trusted."""
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    client.put("/v1/registry/digits/aliases/production", json={"version": 1}, headers=owner)
    time.sleep(settings.alias_switch_seconds)  # the move has taken effect
    stalled = settings.model_copy(update={"alias_poll_seconds": 3600.0})
    with TestClient(create_app(stalled)) as behind:
        assert answered(behind.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)) == "digits@1"
        assert answered(behind.post("/v2/models/digits/infer", json=V2, headers=owner)) == "digits@1"
        moved = client.put("/v1/registry/digits/aliases/production", json={"version": 2}, headers=owner).json()
        effective = datetime.fromisoformat(moved["effective_at"]).timestamp()
        assert answered(behind.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)) == "digits@1"  # not yet
        time.sleep(max(0.0, effective - time.time()) + 0.05)
        assert answered(behind.post("/v1/models/digits@production/predict", json=SAMPLE, headers=owner)) == "digits@2"
        assert answered(behind.post("/v2/models/digits/infer", json=V2, headers=owner)) == "digits@2"  # the bare name's route too
