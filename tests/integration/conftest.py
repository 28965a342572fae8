"""Integration tests: real `kiln api` and `kiln worker` processes, over both backends:
the embedded default (SQLite + SQL broker + folder) and the distributed one (PostgreSQL + Redis +
an S3 server, each test stack with its own bucket)."""

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

    def kiln_fails(self, *args: str) -> str:
        """A ``kiln`` command that must fail; its error output."""
        done = subprocess.run([PYTHON, "-m", "app.cli", *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0, done.stdout
        return done.stderr

    def _spawn(self, label: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{label}-{len(self.processes)}.log", "w")
        proc = subprocess.Popen([PYTHON, "-m", "app.cli", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def start_api(self, *args: str) -> subprocess.Popen:
        """``kiln api`` with ``args`` (e.g. ``--workers 2``), once it answers /readyz."""
        proc = self._spawn("api", "api", *args)
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

    def start_service(self, workers: int = 1) -> httpx.Client:
        """Migrate, start the API and ``workers`` workers; a client of a new tenant."""
        self.kiln("db", "upgrade")
        self.start_api()
        for _ in range(workers):
            self.start_worker()
        return self.new_tenant()

    def signal_group(self, proc: subprocess.Popen, sig: int) -> None:
        """Signals the process's whole group (a worker and anything it started), as an OOM-kill or a node stop would."""
        os.killpg(proc.pid, sig)

    def settings(self):
        """The stack's Settings, built from its environment as its processes build them."""
        from app.core.settings import Settings

        keep = {k: v for k, v in self.env.items() if k.startswith("KILN_")}
        saved = {k: os.environ.get(k) for k in keep}
        os.environ.update(keep)
        try:
            return Settings()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def artifacts(self):
        """The stack's artifact store, read as its processes read it."""
        from app.core.artifacts.configured import open_store

        return open_store(self.settings())

    def worker_logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("worker-*.log")))

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


# Short leases and a busy reconciler, so fault tests see repairs in seconds rather than minutes.
FAST_REPAIRS = {
    "KILN_HEARTBEAT_SECONDS": "0.5",
    "KILN_LEASE_SECONDS": "3",
    "KILN_RECONCILE_SECONDS": "1",
    "KILN_REQUEUE_GRACE_SECONDS": "2",
}


DISTRIBUTED = "postgres+redis+s3"


def backend_env(request, backend: str) -> dict[str, str]:
    """A deployment's settings on ``backend``: each call a new queue and bucket."""
    env = dict(FAST_REPAIRS)
    if backend == DISTRIBUTED:
        s3 = request.getfixturevalue("s3_server")
        env |= {
            "KILN_DATABASE_URL": request.getfixturevalue("postgres_url"),
            "KILN_BROKER_URL": request.getfixturevalue("redis_url"),
            "KILN_QUEUE_NAME": f"kiln.test.{secrets.token_hex(4)}",
            **s3.env(s3.new_bucket()),
        }
    return env


def make_stack(request, tmp_path_factory, backend: str) -> Stack:
    s = Stack(backend, backend_env(request, backend), tmp_path_factory.mktemp(backend.replace("+", "-")))
    s.kiln("db", "upgrade")
    return s


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries its stack's process logs: CI keeps nothing else of them."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Stack):
                report.sections.append((f"{value.name} stack logs", value.read_logs()))
    return report


@pytest.fixture(scope="module", params=["embedded", DISTRIBUTED])
def stack(request, tmp_path_factory):
    """API and one worker, shared by a module's tests (each test uses its own tenant)."""
    s = make_stack(request, tmp_path_factory, request.param)
    s.start_api()
    s.start_worker()
    yield s
    s.stop()


@pytest.fixture(params=["embedded", DISTRIBUTED])
def bare_stack(request, tmp_path_factory):
    """A stack of the test's own with no process started: fault tests start and kill them."""
    s = make_stack(request, tmp_path_factory, request.param)
    yield s
    s.stop()


def wait_for(client: httpx.Client, job_id: str, states: set[str], timeout: float = 120, until=None, resource: str = "jobs") -> dict:
    """Polls until the job (``/v1/{resource}/{job_id}``) is in one of ``states`` (and ``until(job)``
    holds). Rides out an API that is restarting or a database that is: some tests do that on purpose."""
    deadline = time.monotonic() + timeout
    job = {"state": "unknown"}
    while time.monotonic() < deadline:
        try:
            r = client.get(f"/v1/{resource}/{job_id}")
            if r.status_code == 200:
                job = r.json()
                if job["state"] in states and (until is None or until(job)):
                    return job
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
