"""A shared service's bounds with real processes, on both backends: the operator's CLI for keys
and quotas, a running-jobs quota that two workers respect, revoked keys refused by a running API,
and rate limits that hold across API processes where the counters are shared (Redis)."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from tests.integration.conftest import DISTRIBUTED, wait_for
from tests.specs import SHORT_JOB

pytestmark = pytest.mark.integration


def client_of(stack, secret: str) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=60)


def test_operator_cli_keys_and_quotas(bare_stack):
    s = bare_stack
    s.env["KILN_AUTH_CACHE_SECONDS"] = "1"
    s.start_api()
    tenant = f"acme-{secrets.token_hex(3)}"
    shown = s.kiln("tenants", "set-quota", tenant, "--max-running-jobs", "2", "--max-queued-jobs", "1", "--max-storage-bytes", "50G",
                   "--max-priority", "0")
    assert "max_running_jobs 2" in shown and "max_queued_jobs 1" in shown and "max_storage_bytes 50,000,000,000" in shown
    assert "max_priority 0" in shown

    admin = client_of(s, s.kiln("keys", "create", "--tenant", tenant, "--name", "ops").strip().splitlines()[-1])
    app_out = s.kiln("keys", "create", "--tenant", tenant, "--name", "shop", "--scopes", "predict", "--expires-days", "30")
    app_key = client_of(s, app_out.strip().splitlines()[-1])
    assert "scopes predict" in app_out and "expires" in app_out

    usage = admin.get("/v1/usage").json()
    assert usage["quotas"] == {"max_running_jobs": 2, "max_queued_jobs": 1, "max_storage_bytes": 50 * 10**9, "max_priority": 0}
    assert admin.post("/v1/jobs", json={**SHORT_JOB, "priority": 1}).status_code == 403
    assert app_key.get("/v1/usage").status_code == 403  # a predict key reads nothing
    assert admin.post("/v1/jobs", json=SHORT_JOB).status_code == 201
    over = admin.post("/v1/jobs", json=SHORT_JOB)  # no worker runs: the first is still queued
    assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"

    listed = s.kiln("keys", "list", "--tenant", tenant)
    assert "ops" in listed and "shop" in listed and app_out.strip().splitlines()[-1] not in listed
    key_id = next(line.split()[0] for line in listed.splitlines() if line.endswith("shop"))
    assert app_key.get("/v1/models/nope").status_code == 403  # known, scoped
    s.kiln("keys", "revoke", key_id, "--tenant", tenant)
    time.sleep(1.5)  # KILN_AUTH_CACHE_SECONDS
    assert app_key.get("/v1/models/nope").status_code == 401
    assert next(k for k in admin.get("/v1/keys").json()["items"] if k["id"] == key_id)["revoked_at"]

    show = s.kiln("tenants", "show", tenant)
    assert "1 queued" in show
    refused = s.kiln_fails("tenants", "show", "no-such-tenant")
    assert "no tenant 'no-such-tenant'" in refused


def test_a_running_jobs_quota_runs_one_job_at_a_time_on_two_workers(bare_stack):
    s = bare_stack
    s.start_api()
    s.start_worker()
    s.start_worker()
    tenant = f"solo-{secrets.token_hex(3)}"
    s.kiln("tenants", "set-quota", tenant, "--max-running-jobs", "1")
    client = client_of(s, s.kiln("keys", "create", "--tenant", tenant).strip().splitlines()[-1])
    ids = [client.post("/v1/jobs", json=SHORT_JOB).json()["id"] for _ in range(3)]
    seen_running = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        states = [client.get(f"/v1/jobs/{job_id}").json()["state"] for job_id in ids]
        seen_running = max(seen_running, states.count("running"))
        assert states.count("running") <= 1, states
        if all(state == "succeeded" for state in states):
            break
        time.sleep(0.1)
    assert all(wait_for(client, job_id, {"succeeded"}, timeout=5) for job_id in ids)
    assert seen_running == 1
    # One after the other, in the database's own record of each attempt.
    spans = sorted((a["started_at"], a["ended_at"]) for job_id in ids for a in client.get(f"/v1/jobs/{job_id}/attempts").json())
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans


def test_a_rate_limit_holds_across_api_processes(bare_stack):
    s = bare_stack
    s.env["KILN_RATE_LIMIT_SUBMIT"] = "4/minute"
    processes = 2 if s.name == DISTRIBUTED else 1  # the embedded default counts in the process
    s.start_api("--workers", str(processes))
    key = s.kiln("keys", "create", "--tenant", f"rl-{secrets.token_hex(3)}").strip().splitlines()[-1]
    answers = []
    for _ in range(10):  # a new connection each time, so the processes share the requests
        with client_of(s, key) as c:
            answers.append(c.post("/v1/jobs", json={"name": "invalid: no model"}))
    assert [r.status_code for r in answers] == [422] * 4 + [429] * 6
    assert [r.headers["ratelimit-remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]
    assert all(int(r.headers["retry-after"]) >= 1 for r in answers[4:])
