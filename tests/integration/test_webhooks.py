"""Webhooks over real processes, on both backends: a receiver on 127.0.0.1 that fails the first two
tries gets the third, from a worker, signed in the Standard Webhooks form with the hook's secret."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

JOB = {
    "model": {"architecture": "mlp", "params": {"hidden_sizes": [32]}},
    "data": {"dataset": "builtin:digits"},
    "training": {"epochs": 2, "batch_size": 32},
    "labels": {"team": "vision"},
}


class Receiver:
    """An HTTP endpoint that answers 500 to the first ``failures`` requests, then 204; it keeps each
    request's headers and body."""

    def __init__(self, failures: int):
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(500 if len(received) <= failures else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kiln"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.received) >= n, f"{len(self.received)} of {n} requests after {timeout} s"


def test_a_receiver_that_fails_twice_gets_the_third_try_signed(bare_stack):
    stack = bare_stack
    # Private addresses allowed, as the receiver is on 127.0.0.1; retries after 1 s, then 2 s.
    stack.env.update({"KILN_WEBHOOK_ALLOW_PRIVATE": "1", "KILN_WEBHOOK_RETRY_SECONDS": "1,2", "KILN_WEBHOOK_POLL_SECONDS": "0.2"})
    stack.start_api()
    stack.start_worker()
    client = stack.new_tenant()
    receiver = Receiver(failures=2)
    r = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["job.succeeded", "job.failed"]})
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["secret"].startswith("whsec_") and "secret" not in client.get(f"/v1/webhooks/{hook['id']}").json()

    job = wait_for(client, client.post("/v1/jobs", json=JOB).json()["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
    assert job["state"] == "succeeded", stack.read_logs()
    receiver.wait_for(3, timeout=60)
    time.sleep(1)  # nothing more comes: the third try was answered 204
    assert len(receiver.received) == 3

    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(ids) == 1  # one delivery, tried three times
    headers, body = receiver.received[-1]
    event = Webhook(hook["secret"]).verify(body, headers)  # raises unless signed with the hook's secret, and fresh
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job["id"] and event["data"]["model_id"] == job["model_id"] and event["data"]["labels"] == {"team": "vision"}
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 44).verify(body, headers)

    deliveries = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    assert [(d["id"], d["event_type"], d["status"], d["attempts"], d["last_status_code"]) for d in deliveries] == [
        (ids.pop(), "job.succeeded", "succeeded", 3, 204)]
    assert stack.new_tenant().get(f"/v1/webhooks/{hook['id']}/deliveries").status_code == 404  # another tenant's hook is not found
    assert "delivered to" in stack.worker_logs()  # sent by the worker, not the API
