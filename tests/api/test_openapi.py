"""The OpenAPI schema is a contract a generated client relies on: every operation named, every
error answer documented in the one shape, the deployment's own limits stated. Beside it, the
answers the fuzzer found undocumented or wrong, each pinned by what a caller sees."""

from __future__ import annotations

import re

import pytest

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema(client):
    return client.get("/openapi.json").json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_every_operation_has_a_unique_camel_case_id(schema):
    ids = [op["operationId"] for _, _, op in operations(schema)]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    assert [i for i in ids if not re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", i)] == []


def test_every_authenticated_operation_documents_its_errors_as_json(schema):
    authenticated = [(path, op) for path, _, op in operations(schema) if op.get("security")]
    assert len(authenticated) >= 30
    for path, op in authenticated:
        for status in ("401", "403", "422"):
            answer = op["responses"].get(status)
            assert answer, (path, op["operationId"], status)
            # Under /v2 the Open Inference Protocol's own error body, which its clients read.
            shape = "ProtocolErrorOut" if path.startswith("/v2/") else "ErrorOut"
            assert answer["content"] == {"application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}}, (path, status)
    logs = schema["paths"]["/v1/jobs/{job_id}/logs"]["get"]["responses"]
    assert "text/plain" in logs["200"]["content"] and list(logs["404"]["content"]) == ["application/json"]


def test_the_schema_states_this_deployments_limits(schema, settings):
    spec = schema["components"]["schemas"]["TrainingSpec"]["properties"]["max_runtime_seconds"]
    assert settings.max_runtime_seconds in [o.get("maximum") for o in spec.get("anyOf", [spec])]
    predict = schema["paths"]["/v1/models/{model_id}/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert predict["schema"]["properties"]["inputs"]["maxItems"] == settings.max_predict_samples
    upload = schema["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][upload]["properties"]["format"]["enum"] == ["npz", "csv", "idx", "image-zip", "sequences"]


def test_a_wrong_method_names_the_allowed_ones(client, auth):
    r = client.put("/v1/jobs", headers=auth)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "GET, POST"
    r = client.post("/v1/datasets/ds_0123456789abcdef0123456789abcdef", headers=auth)
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"


def test_a_body_that_cannot_be_parsed_is_a_validation_error(client, auth):
    r = client.post("/v1/datasets", content=b"--x\r\nnot a part", headers={**auth, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error" and r.json()["error"]["details"][0]["loc"] == ["body"]


@pytest.mark.parametrize("epochs", [True, "3", 2.5])
def test_a_number_field_takes_only_numbers(client, auth, epochs):
    job = {"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}, "training": {"epochs": epochs}}
    r = client.post("/v1/jobs", json=job, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"][:3] == ["body", "training", "epochs"]


def test_an_integral_float_is_an_integer(client, auth):
    job = {"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}, "training": {"epochs": 2.0}}
    r = client.post("/v1/jobs", json=job, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["training"]["epochs"] == 2


def test_unknown_fields_are_refused_by_name(client, auth):
    job = {"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}, "training": {"epoch": 2}}
    r = client.post("/v1/jobs", json=job, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["body", "training", "epoch"]


def test_steps_past_a_database_integer_are_refused_not_a_server_error(client, auth):
    job = client.post("/v1/jobs", json={"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}}, headers=auth).json()
    ok = client.get(f"/v1/jobs/{job['id']}/metrics", params={"until_step": 2**63 - 1}, headers=auth)
    assert ok.status_code == 200, ok.text
    r = client.get(f"/v1/jobs/{job['id']}/metrics", params={"until_step": 2**63}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["query", "until_step"]


@pytest.mark.parametrize("cursor", ["nope", "1-xx_00", "9" * 17 + "-job_" + "0" * 32])
def test_a_cursor_that_no_page_gave_is_refused_by_name(client, auth, cursor):
    r = client.get("/v1/jobs", params={"cursor": cursor}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["query", "cursor"]


def test_a_cursor_from_a_page_leads_to_the_next(client, new_key):
    auth = new_key()
    for i in range(3):
        client.post("/v1/jobs", json={"name": f"j{i}", "model": {"architecture": "mlp"}, "data": {"dataset": "builtin:digits"}}, headers=auth)
    first = client.get("/v1/jobs", params={"limit": 2}, headers=auth).json()
    rest = client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth).json()
    assert [j["name"] for j in first["items"] + rest["items"]] == ["j2", "j1", "j0"] and rest["next_cursor"] is None
