"""Text PostgreSQL cannot store: the NUL character, in a body, a label or a query value, is the
request's fault (a 422), not a 500; SQLite stores it, so this runs on PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core import bootstrap, tenants
from app.core.db.engine import session_factory
from app.core.settings import Settings
from tests.specs import LENET_JOB


def test_a_nul_character_anywhere_is_a_422_and_writes_nothing(own_postgres_url, tmp_path):
    settings = Settings(data_dir=tmp_path, database_url=own_postgres_url, run_reconciler=False)
    bootstrap.prepare(settings)
    with session_factory(settings.database_url)() as s:
        tenant = tenants.get_or_create_tenant(session=s, name="t")
        _, key = tenants.create_key(session=s, tenant=tenant)
        s.commit()
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for r in (client.post("/v1/jobs", json=LENET_JOB | {"name": "a\x00b"}, headers=auth),
                  client.post("/v1/jobs", json=LENET_JOB | {"labels": {"team": "v\x00"}}, headers=auth),
                  client.get("/v1/jobs", params={"label": "team:v\x00"}, headers=auth)):
            assert r.status_code == 422, r.text
            assert "NUL" in r.json()["error"]["message"]
        assert client.get("/v1/jobs", headers=auth).json()["items"] == []
