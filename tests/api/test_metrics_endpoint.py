"""GET /metrics' access rules: open by default, behind KILN_METRICS_TOKEN when set, absent when off.
(What the numbers say as jobs run and predicts are served: tests/integration/test_prometheus.py.)"""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.main import create_app


def test_metrics_are_open_by_default_and_parse_as_prometheus_text(client):
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(r.text)}
    assert {"kiln_jobs", "kiln_workers_alive", "kiln_job_queue_wait_seconds", "kiln_jobs_finished", "kiln_predict_requests"} <= names


def test_a_metrics_token_is_required_once_set_and_off_means_not_found(settings):
    with TestClient(create_app(settings.model_copy(update={"metrics_token": "scrape-me"}))) as c:
        assert c.get("/metrics").status_code == 401
        wrong = c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "KILN_METRICS_TOKEN" in wrong.json()["error"]["message"]
        assert c.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200
    with TestClient(create_app(settings.model_copy(update={"metrics_enabled": False}))) as c:
        off = c.get("/metrics")
        assert off.status_code == 404 and "KILN_METRICS_ENABLED" in off.json()["error"]["message"]
