from tests.specs import LENET_JOB


def test_v1_needs_a_valid_key(client):
    for path in ("/v1/jobs", "/v1/models", "/v1/architectures"):
        r = client.get(path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        assert client.get(path, headers={"Authorization": "Bearer kiln_wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401


def test_open_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "database": True, "broker": True, "store": True}
    assert client.get("/openapi.json").json()["info"]["title"] == "Kiln"
    assert client.get("/docs").status_code == 200


def test_keys_are_stored_hashed(settings, new_key):
    from sqlalchemy import select

    from app.core.db.engine import session_factory
    from app.core.db.tables import ApiKey

    key = new_key()["Authorization"].split()[1]
    with session_factory(settings.database_url)() as session:
        stored = list(session.scalars(select(ApiKey.key_hash)))
    assert key not in stored
    assert all(len(h) == 64 for h in stored)


def test_a_tenant_cannot_see_or_touch_another_tenants_jobs(client, new_key):
    alice, bob = new_key(), new_key()
    job_id = client.post("/v1/jobs", json=LENET_JOB, headers=alice).json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=bob).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/metrics", headers=bob).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/logs", headers=bob).status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=bob).status_code == 404
    assert client.get("/v1/jobs", headers=bob).json()["items"] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=alice).json()["state"] == "queued"


def test_architectures_lists_mlp_and_lenet5_with_schemas_and_sizes(client, auth):
    archs = {a["name"]: a for a in client.get("/v1/architectures", headers=auth).json()}
    assert {"mlp", "lenet5"} <= set(archs)
    lenet = archs["lenet5"]
    assert lenet["parameter_count"] == 61706  # 6*(25+1) + 16*(150+1) + 400*120+120 + 120*84+84 + 84*10+10
    assert lenet["input"]["size"] == [32, 32]
    assert lenet["params_schema"]["properties"]["activation"]["enum"] == ["sigmoid", "tanh", "relu", "leaky_relu"]
    assert set(archs["mlp"]["params_schema"]["properties"]) == {"hidden_sizes", "activation", "negative_slope", "dropout", "batch_norm"}
