"""Integration tests: real `kiln api` and `kiln worker` processes, over both backends:
the embedded default (SQLite + SQL broker + folder) and PostgreSQL + Redis."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """One deployment of Kiln: its settings as environment variables, and the processes it runs."""

    def __init__(self, name: str, env: dict[str, str], data_dir: Path):
        self.name = name
        self.env = {**os.environ, **env, "KILN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        self.data_dir = data_dir
        self.port = free_port()
        self.env["KILN_PORT"] = str(self.port)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def kiln(self, *args: str) -> str:
        done = subprocess.run([PYTHON, "-m", "app.cli", *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def _spawn(self, label: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{label}-{len(self.processes)}.log", "w")
        proc = subprocess.Popen([PYTHON, "-m", "app.cli", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def start_api(self) -> subprocess.Popen:
        proc = self._spawn("api", "api")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, self.read_logs()
            time.sleep(0.2)
        raise AssertionError("API did not become ready:\n" + self.read_logs())

    def start_worker(self) -> subprocess.Popen:
        return self._spawn("worker", "worker")

    def new_tenant(self) -> httpx.Client:
        out = self.kiln("keys", "create", "--tenant", f"tenant-{secrets.token_hex(4)}")
        key = out.strip().splitlines()[-1]
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def read_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module", params=["embedded", "postgres+redis"])
def stack(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    env = {"KILN_HEARTBEAT_SECONDS": "0.5"}
    if request.param == "postgres+redis":
        env |= {
            "KILN_DATABASE_URL": request.getfixturevalue("postgres_url"),
            "KILN_BROKER_URL": request.getfixturevalue("redis_url"),
            "KILN_QUEUE_NAME": f"kiln.test.{secrets.token_hex(4)}",
        }
    s = Stack(request.param, env, data_dir)
    s.kiln("db", "upgrade")
    s.start_api()
    s.start_worker()
    yield s
    s.stop()


def wait_for(client: httpx.Client, job_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")
