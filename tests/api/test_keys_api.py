"""Scoped keys through REST: what each scope may do, keys made by keys, listing without secrets,
revocation, expiry, and refused keys remembered like good ones."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import event, update

from app.core.db.engine import session_factory
from app.core.db.tables import ApiKey
from tests.api.inline_worker import run_job
from tests.specs import SHORT_JOB

DIGIT = [[0.0] * 8 for _ in range(8)]


@pytest.fixture(scope="module")
def trained(client, settings) -> tuple[str, str]:
    """A tenant with a trained model: (tenant name, model id)."""
    from app.core import tenants

    name = f"scopes-{secrets.token_hex(4)}"
    with session_factory(settings.database_url)() as session:
        _, key = tenants.create_key(session=session, tenant=tenants.get_or_create_tenant(session=session, name=name))
        session.commit()
    auth = {"Authorization": f"Bearer {key}"}
    job = client.post("/v1/jobs", json=SHORT_JOB, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    return name, client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["model_id"]


def test_a_predict_only_key_can_predict_and_nothing_else(client, new_key, trained):
    tenant, model_id = trained
    app_key = new_key(tenant, scopes=["predict"])
    predicted = client.post(f"/v1/models/{model_id}/predict", json={"inputs": [DIGIT]}, headers=app_key)
    assert predicted.status_code == 200, predicted.text
    refused = {
        "GET /v1/jobs": client.get("/v1/jobs", headers=app_key),
        "GET /v1/models/{id}": client.get(f"/v1/models/{model_id}", headers=app_key),
        "POST /v1/jobs": client.post("/v1/jobs", json=SHORT_JOB, headers=app_key),
        "PATCH /v1/models/{id}": client.patch(f"/v1/models/{model_id}", json={"serving": {}}, headers=app_key),
        "GET /v1/models/{id}/export": client.get(f"/v1/models/{model_id}/export", headers=app_key),
        "POST /v1/datasets": client.post("/v1/datasets", data={"name": "x", "format": "csv"},
                                         files={"file": ("x.csv", b"a,label\n1,0\n")}, headers=app_key),
        "GET /v1/keys": client.get("/v1/keys", headers=app_key),
        "POST /v1/keys": client.post("/v1/keys", json={"name": "more", "scopes": ["predict"]}, headers=app_key),
        "GET /v1/usage": client.get("/v1/usage", headers=app_key),
    }
    for what, r in refused.items():
        assert r.status_code == 403, (what, r.status_code, r.text)
        error = r.json()["error"]
        assert error["code"] == "forbidden" and "scope" in error["message"] and "predict" in error["message"], what


def test_a_read_key_reads_but_cannot_predict_or_submit(client, new_key, trained):
    tenant, model_id = trained
    reader = new_key(tenant, scopes=["read"])
    assert client.get(f"/v1/models/{model_id}", headers=reader).status_code == 200
    assert client.get("/v1/jobs", headers=reader).json()["items"]
    for r in (client.post(f"/v1/models/{model_id}/predict", json={"inputs": [DIGIT]}, headers=reader),
              client.post("/v1/jobs", json=SHORT_JOB, headers=reader)):
        assert r.status_code == 403
        assert "'predict'" in r.json()["error"]["message"] or "'train'" in r.json()["error"]["message"]


def test_an_admin_key_makes_lists_and_revokes_keys(client, new_key, trained):
    tenant, model_id = trained
    admin = new_key(tenant)
    made = client.post("/v1/keys", json={"name": "shop frontend", "scopes": ["predict"], "expires_in_days": 30}, headers=admin)
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"].startswith("kiln_") and key["key"].startswith(key["prefix"])
    assert key["scopes"] == ["predict"] and key["expires_at"] and key["last_used_at"] is None
    app_key = {"Authorization": f"Bearer {key['key']}"}
    assert client.post(f"/v1/models/{model_id}/predict", json={"inputs": [DIGIT]}, headers=app_key).status_code == 200

    listed = client.get("/v1/keys", headers=admin).json()["items"]
    mine = next(k for k in listed if k["id"] == key["id"])
    assert "key" not in mine and all(key["key"] not in str(k) for k in listed)
    assert mine["name"] == "shop frontend" and mine["last_used_at"] is not None  # it was just used

    assert client.delete(f"/v1/keys/{key['id']}", headers=admin).status_code == 204
    # This process forgets it at once; others within KILN_AUTH_CACHE_SECONDS.
    after = client.post(f"/v1/models/{model_id}/predict", json={"inputs": [DIGIT]}, headers=app_key)
    assert after.status_code == 401
    assert next(k for k in client.get("/v1/keys", headers=admin).json()["items"] if k["id"] == key["id"])["revoked_at"]


def test_a_key_cannot_grant_more_than_it_has(client, new_key):
    maker = new_key(scopes=["admin", "predict"])
    r = client.post("/v1/keys", json={"name": "wider", "scopes": ["predict", "train"]}, headers=maker)
    assert r.status_code == 403 and "train" in r.json()["error"]["message"]
    assert client.post("/v1/keys", json={"name": "same", "scopes": ["predict"]}, headers=maker).status_code == 201
    unknown = client.post("/v1/keys", json={"name": "odd", "scopes": ["root"]}, headers=maker)
    assert unknown.status_code == 422


def test_keys_of_another_tenant_are_not_found(client, new_key):
    alice, bob = new_key(), new_key()
    key_id = client.post("/v1/keys", json={"name": "a", "scopes": ["read"]}, headers=alice).json()["id"]
    assert client.delete(f"/v1/keys/{key_id}", headers=bob).status_code == 404
    assert all(k["id"] != key_id for k in client.get("/v1/keys", headers=bob).json()["items"])


def test_an_expired_key_is_refused(client, settings, new_key):
    admin = new_key()
    made = client.post("/v1/keys", json={"name": "short-lived", "scopes": ["read"], "expires_in_days": 1}, headers=admin).json()
    with session_factory(settings.database_url)() as session:  # a day passes
        session.execute(update(ApiKey).where(ApiKey.id == made["id"]).values(expires_at=ApiKey.created_at))
        session.commit()
    r = client.get("/v1/jobs", headers={"Authorization": f"Bearer {made['key']}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_a_flood_of_one_bad_key_costs_one_lookup(client):
    engine = client.app.state.sessions.kw["bind"]
    lookups = []

    def count(_conn, _cursor, statement, *_):
        if "api_keys" in statement:
            lookups.append(statement)

    bad = {"Authorization": f"Bearer kiln_{secrets.token_urlsafe(32)}"}
    event.listen(engine, "before_cursor_execute", count)
    try:
        answers = [client.get("/v1/jobs", headers=bad).status_code for _ in range(50)]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert answers == [401] * 50
    assert len(lookups) == 1
