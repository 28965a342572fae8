"""Quotas and rate limits as a tenant meets them over REST: 429/413 ``quota_exceeded`` naming the
quota, ``GET /v1/usage``, and per-key rate limits with their headers on every limited answer."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits

from app.api.main import create_app
from app.core import quotas, tenants
from app.core.db.engine import session_factory
from app.core.settings import Settings
from tests.api.inline_worker import run_job
from tests.specs import SHORT_JOB

DIGITS = load_digits()


def csv_dataset(rows: int) -> bytes:
    lines = ["a,b,c,label"] + [f"{i % 7},{i % 5},{i % 3},{i % 2}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def upload(client, auth, rows=200, name="small"):
    return client.post("/v1/datasets", data={"name": name, "format": "csv"}, files={"file": ("d.csv", csv_dataset(rows))}, headers=auth)


def tenant_with_quotas(settings, **values) -> dict[str, str]:
    with session_factory(settings.database_url)() as session:
        tenant = tenants.get_or_create_tenant(session=session, name=f"q-{secrets.token_hex(4)}")
        quotas.set_quotas(session=session, tenant=tenant, values=values)
        _, key = tenants.create_key(session=session, tenant=tenant)
        session.commit()
    return {"Authorization": f"Bearer {key}"}


def test_usage_shows_jobs_storage_and_quotas(client, settings):
    auth = tenant_with_quotas(settings, max_running_jobs=2, max_storage_bytes=10**9)
    empty = client.get("/v1/usage", headers=auth).json()
    assert empty["jobs"] == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert empty["storage"]["total_bytes"] == 0
    assert empty["quotas"] == {"max_running_jobs": 2, "max_queued_jobs": None, "max_storage_bytes": 10**9, "max_priority": None}
    dataset = upload(client, auth).json()
    job = client.post("/v1/jobs", json=SHORT_JOB, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    model_id = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["model_id"]
    model = client.get(f"/v1/models/{model_id}", headers=auth).json()
    client.post("/v1/jobs", json=SHORT_JOB, headers=auth)
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["jobs"]["succeeded"] == 1 and usage["jobs"]["queued"] == 1
    storage = usage["storage"]
    assert storage["datasets_bytes"] == dataset["size_bytes"] and storage["models_bytes"] == model["size_bytes"]
    assert storage["total_bytes"] == storage["datasets_bytes"] + storage["models_bytes"] + storage["checkpoints_bytes"]


def test_over_the_queued_jobs_quota_a_submit_is_429_quota_exceeded(client, settings):
    auth = tenant_with_quotas(settings, max_queued_jobs=2)
    assert [client.post("/v1/jobs", json=SHORT_JOB, headers=auth).status_code for _ in range(2)] == [201, 201]
    r = client.post("/v1/jobs", json=SHORT_JOB, headers=auth)
    assert r.status_code == 429
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded" and "max_queued_jobs" in error["message"] and "2" in error["message"]
    assert len(client.get("/v1/jobs", headers=auth).json()["items"]) == 2  # nothing was queued by the refusal


def test_over_the_storage_quota_uploads_and_submits_are_413_and_keep_nothing(client, settings):
    auth = tenant_with_quotas(settings, max_storage_bytes=4000)
    r = upload(client, auth, rows=2000)  # converts to more than 4000 bytes
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "quota_exceeded" and "max_storage_bytes" in r.json()["error"]["message"]
    assert client.get("/v1/datasets", headers=auth).json()["items"] == []
    assert client.get("/v1/usage", headers=auth).json()["storage"]["total_bytes"] == 0
    first = upload(client, auth, rows=20)
    assert first.status_code == 201, first.text
    with session_factory(settings.database_url)() as session:  # the operator lowers the quota under what is used
        quotas.set_quotas(session=session, tenant=tenants.get_tenant_by_id(session=session, tenant_id=_tenant_of(session, first)),
                          values={"max_storage_bytes": first.json()["size_bytes"]})
        session.commit()
    for r in (upload(client, auth, rows=20), client.post("/v1/jobs", json=SHORT_JOB, headers=auth)):
        assert r.status_code == 413 and r.json()["error"]["code"] == "quota_exceeded"


def _tenant_of(session, dataset_response) -> str:
    from app.core.db.tables import Dataset

    return session.get(Dataset, dataset_response.json()["id"]).tenant_id


# --- rate limits -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(settings):
    """The same database, served by an app with tight limits."""
    tight = Settings(data_dir=settings.data_dir, rate_limit_submit="3/minute", rate_limit_predict="4/minute", rate_limit_upload="2/minute",
                     run_reconciler=False)
    with TestClient(create_app(tight)) as c:
        yield c


def test_submits_past_the_limit_are_429_with_retry_after(limited, new_key):
    auth = new_key()
    answers = [limited.post("/v1/jobs", json=SHORT_JOB, headers=auth) for _ in range(4)]
    assert [r.status_code for r in answers] == [201, 201, 201, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert all(r.headers["ratelimit-limit"] == "3" and 0 <= int(r.headers["ratelimit-reset"]) <= 60 for r in answers)
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "too_many_requests" and "KILN_RATE_LIMIT_SUBMIT" in refused.json()["error"]["message"]
    # Per key: another key of another tenant is not held back; reads are not limited.
    assert limited.post("/v1/jobs", json=SHORT_JOB, headers=new_key()).status_code == 201
    assert limited.get("/v1/jobs", headers=auth).status_code == 200


def test_errors_of_a_limited_route_carry_the_headers_too(limited, new_key):
    auth = new_key()
    bad = limited.post("/v1/jobs", json={"name": "no model"}, headers=auth)
    assert bad.status_code == 422 and bad.headers["ratelimit-remaining"] == "2"
    unknown = limited.post("/v1/jobs", json={**SHORT_JOB, "data": {"dataset": "ds_nope"}}, headers=auth)
    assert unknown.status_code == 422 and unknown.headers["ratelimit-remaining"] == "1"


def test_uploads_are_limited(limited, new_key):
    auth = new_key()
    assert [upload(limited, auth, rows=10).status_code for _ in range(3)] == [201, 201, 429]


def test_predict_is_limited_in_the_fast_lane_and_the_route(limited, client, settings, new_key):
    auth = new_key()
    job = client.post("/v1/jobs", json=SHORT_JOB, headers=auth).json()
    assert run_job(job["id"], settings) == "succeeded"
    model_id = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["model_id"]
    body = {"inputs": DIGITS.images[:1].tolist()}
    fast = [limited.post(f"/v1/models/{model_id}/predict", json=body, headers=auth) for _ in range(3)]  # JSON: the fast lane
    assert [r.status_code for r in fast] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in fast] == ["3", "2", "1"]
    png = _png(DIGITS.images[0])
    routed = limited.post(f"/v1/models/{model_id}/predict", files={"file": ("x.png", png, "image/png")}, headers=auth)  # the route
    assert routed.status_code == 200 and routed.headers["ratelimit-remaining"] == "0"
    for r in (limited.post(f"/v1/models/{model_id}/predict", json=body, headers=auth),
              limited.post(f"/v1/models/{model_id}/predict", files={"file": ("x.png", png, "image/png")}, headers=auth)):
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.headers["ratelimit-remaining"] == "0"
    assert limited.get(f"/v1/models/{model_id}", headers=auth).status_code == 200


def _png(sample: np.ndarray) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.round(sample * 255 / 16).astype(np.uint8), "L").save(out, format="PNG")
    return out.getvalue()


def test_a_limit_left_empty_is_off(settings, new_key):
    off = Settings(data_dir=settings.data_dir, rate_limit_submit="", run_reconciler=False)
    with TestClient(create_app(off)) as c:
        auth = new_key()
        answers = [c.post("/v1/jobs", json={"name": "x"}, headers=auth) for _ in range(5)]
    assert [r.status_code for r in answers] == [422] * 5
    assert all("ratelimit-limit" not in r.headers for r in answers)
