"""Webhooks' rules at the API: what URL and events a hook may have, the secret shown once, the
tenant's limit, and another tenant's hook not found. (A delivery end to end, signed and retried:
tests/integration/test_webhooks.py.)"""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.api.main import create_app


def test_a_private_or_non_http_url_and_an_unknown_event_are_refused_naming_why(client, auth):
    loopback = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["job.succeeded"]}, headers=auth)
    assert loopback.status_code == 422 and "KILN_WEBHOOK_ALLOW_PRIVATE" in loopback.json()["error"]["message"]
    metadata = client.post("/v1/webhooks", json={"url": "http://169.254.169.254/latest", "events": ["job.failed"]}, headers=auth)
    assert metadata.status_code == 422 and "private" in metadata.json()["error"]["message"]
    ftp = client.post("/v1/webhooks", json={"url": "ftp://example.com/x", "events": ["job.failed"]}, headers=auth)
    assert ftp.status_code == 422 and "http" in ftp.json()["error"]["message"]
    broken = client.post("/v1/webhooks", json={"url": "http://e3l3J]w5Bj[0", "events": ["job.failed"]}, headers=auth)  # found by the fuzzer
    assert broken.status_code == 422 and "not a URL" in broken.json()["error"]["message"]
    unknown = client.post("/v1/webhooks", json={"url": "https://example.com/x", "events": ["job.exploded"]}, headers=auth)
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["loc"][:2] == ["body", "events"]
    assert client.get("/v1/webhooks", headers=auth).json()["items"] == []  # nothing was made


def test_hooks_are_listed_without_secrets_limited_per_tenant_and_private_to_it(settings, new_key):
    app = create_app(settings.model_copy(update={"webhook_allow_private": True, "max_webhooks": 2}))
    owner, stranger = new_key(), new_key()
    with TestClient(app) as c:
        made = [c.post("/v1/webhooks", json={"url": f"http://10.0.0.{i}/hook", "events": ["job.succeeded"]}, headers=owner) for i in (1, 2)]
        assert [r.status_code for r in made] == [201, 201] and all(r.json()["secret"].startswith("whsec_") for r in made)
        third = c.post("/v1/webhooks", json={"url": "http://10.0.0.3/hook", "events": ["job.failed"]}, headers=owner)
        assert third.status_code == 413 and "KILN_MAX_WEBHOOKS" in third.json()["error"]["message"]
        listed = c.get("/v1/webhooks", headers=owner).json()["items"]
        assert {h["id"] for h in listed} == {r.json()["id"] for r in made} and not any("secret" in h for h in listed)
        hook_id = made[0].json()["id"]
        assert c.get(f"/v1/webhooks/{hook_id}", headers=stranger).status_code == 404
        assert c.delete(f"/v1/webhooks/{hook_id}", headers=stranger).status_code == 404
        assert c.delete(f"/v1/webhooks/{hook_id}", headers=owner).status_code == 204
        assert c.get(f"/v1/webhooks/{hook_id}/deliveries", headers=owner).status_code == 404
