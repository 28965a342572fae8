"""The client's own rules, on their own: which error an answer becomes, which calls are retried and
after how long, where the URL and key come from, and how a spec file is read. (The client against a
real server is tests/integration/test_client.py.)"""

from __future__ import annotations

import json

import httpx
import pytest

from kiln_client import config
from kiln_client.cli import spec_file
from kiln_client.errors import ConnectionFailed, NotFound, QuotaExceeded, RateLimited, ServerError, Unavailable, ValidationError, from_response
from kiln_client.transport import Transport


def kiln_error(status: int, code: str, message: str = "what is wrong", details=(), headers=None) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "details": [{"loc": list(loc), "msg": msg} for loc, msg in details]}}
    return httpx.Response(status, json=body, headers=headers)


def test_each_answer_becomes_its_typed_error_with_the_fields_at_fault():
    invalid = from_response(kiln_error(422, "validation_error", "epochs must be at least 1", [(("body", "training", "epochs"), "at least 1")]))
    assert isinstance(invalid, ValidationError) and invalid.fields == ["body.training.epochs"] and str(invalid) == "epochs must be at least 1"
    assert isinstance(from_response(kiln_error(404, "not_found")), NotFound)
    limited = from_response(kiln_error(429, "too_many_requests", headers={"Retry-After": "7"}))
    assert isinstance(limited, RateLimited) and limited.retry_after == 7
    assert isinstance(from_response(kiln_error(429, "quota_exceeded")), QuotaExceeded)
    assert isinstance(from_response(kiln_error(413, "quota_exceeded")), QuotaExceeded)
    proxy = from_response(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(proxy, ServerError) and proxy.code == "http_error" and "502" in proxy.message


class Server:
    """A scripted sequence of answers, and what was asked."""

    def __init__(self, *answers):
        self.answers, self.requests = list(answers), []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def transport(server: Server, slept: list[float]) -> Transport:
    t = Transport("http://kiln.test", "secret", retries=3, sleep=slept.append)
    t.http = httpx.Client(base_url="http://kiln.test", transport=httpx.MockTransport(server), headers=t.http.headers)
    return t


def test_a_safe_call_is_retried_through_503s_and_dropped_connections_with_growing_waits():
    slept: list[float] = []
    server = Server(kiln_error(503, "unavailable"), httpx.ConnectError("refused"), httpx.Response(200, json={"ok": True}))
    assert transport(server, slept).json("GET", "/v1/jobs") == {"ok": True}
    assert len(server.requests) == 3 and 0.25 <= slept[0] <= 0.5 <= slept[1] <= 1.0  # 0.5 s, then 1 s, each with jitter
    assert server.requests[0].headers["Authorization"] == "Bearer secret"


def test_a_post_without_an_idempotency_key_is_never_repeated_but_one_with_a_key_is():
    slept: list[float] = []
    with pytest.raises(Unavailable):
        transport(Server(kiln_error(503, "unavailable")), slept).json("POST", "/v1/models/m/predict", json={})
    with pytest.raises(ConnectionFailed):
        transport(Server(httpx.ConnectError("refused")), slept).json("POST", "/v1/models/m/predict", json={})
    server = Server(kiln_error(502, "http_error"), httpx.Response(201, json={"id": "job_1"}))
    assert transport(server, slept).json("POST", "/v1/jobs", json={}, headers={"Idempotency-Key": "k1"}) == {"id": "job_1"}
    assert [r.headers["Idempotency-Key"] for r in server.requests] == ["k1", "k1"]


def test_a_rate_limit_waits_its_retry_after_and_a_quota_is_not_retried():
    slept: list[float] = []
    server = Server(kiln_error(429, "too_many_requests", headers={"Retry-After": "2"}), httpx.Response(200, json={}))
    transport(server, slept).json("POST", "/v1/models/m/predict", json={})
    assert slept == [2.0]
    with pytest.raises(QuotaExceeded):
        transport(Server(kiln_error(429, "quota_exceeded")), slept).json("POST", "/v1/jobs", json={}, headers={"Idempotency-Key": "k"})
    slept.clear()
    with pytest.raises(RateLimited) as raised:  # every try limited: the caller gets the last answer
        transport(Server(*[kiln_error(429, "too_many_requests", headers={"Retry-After": "1"})] * 4), slept).json("GET", "/v1/jobs")
    assert raised.value.retry_after == 1 and slept == [1.0, 1.0, 1.0]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("KILN_URL", "KILN_API_KEY", "KILN_HOST", "KILN_PORT", "KILN_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KILN_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_url_and_key_come_from_arguments_then_the_environment_then_login_then_the_local_server(clean_env, monkeypatch):
    (clean_env / "var").mkdir()
    (clean_env / "var" / "api-key").write_text("local-key\n")
    assert config.resolve() == config.Target("http://127.0.0.1:8000", "local-key", "local server")

    config.write_config("https://kiln.example.com", "saved-key")
    assert oct((clean_env / "config.json").stat().st_mode & 0o777) == "0o600"
    assert config.resolve() == config.Target("https://kiln.example.com", "saved-key", str(clean_env / "config.json"))

    monkeypatch.setenv("KILN_URL", "https://other.example.com/")
    monkeypatch.setenv("KILN_API_KEY", "env-key")
    assert config.resolve() == config.Target("https://other.example.com", "env-key", "KILN_URL")
    assert config.resolve("https://third.example.com", "arg-key") == config.Target("https://third.example.com", "arg-key", "argument")


def test_the_local_key_is_never_sent_to_another_server(clean_env, monkeypatch):
    (clean_env / "var").mkdir()
    (clean_env / "var" / "api-key").write_text("local-key")
    assert config.resolve("https://kiln.example.com").key is None
    monkeypatch.setenv("KILN_URL", "https://kiln.example.com")
    assert config.resolve().key is None
    config.write_config("https://kiln.example.com", "saved-key")
    assert config.resolve().key == "saved-key"  # the key saved for that very server
    assert config.resolve("https://elsewhere.example.com").key is None


def test_a_spec_file_in_yaml_or_json_takes_the_flags_overrides(tmp_path):
    (tmp_path / "job.yaml").write_text("model: {architecture: mlp}\ndata: {dataset: builtin:digits}\ntraining: {epochs: 3}\n")
    spec = spec_file.load(tmp_path / "job.yaml", name="quick", epochs=1, dataset="ds_1", labels=["team=vision"])
    assert spec == {"model": {"architecture": "mlp"}, "data": {"dataset": "ds_1"}, "training": {"epochs": 1}, "name": "quick",
                    "labels": {"team": "vision"}}
    (tmp_path / "job.json").write_text(json.dumps({"model": {"architecture": "mlp"}}))
    assert spec_file.load(tmp_path / "job.json") == {"model": {"architecture": "mlp"}}
    (tmp_path / "bad.json").write_text("{model: ")
    with pytest.raises(spec_file.SpecError, match="bad.json is not valid JSON"):
        spec_file.load(tmp_path / "bad.json")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(spec_file.SpecError, match="one object"):
        spec_file.load(tmp_path / "list.yaml")
    with pytest.raises(spec_file.SpecError, match="key=value"):
        spec_file.load(tmp_path / "job.json", labels=["team"])
