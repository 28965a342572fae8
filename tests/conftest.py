"""The real servers the suite talks to besides the embedded default: PostgreSQL, Redis and an
S3-compatible object store (moto's server, started here; or the one KILN_TEST_S3_ENDPOINT names).

Each run gets a fresh PostgreSQL database (dropped at the end) and its own Redis queue name; each
test that asks gets a fresh bucket.
Where the servers are absent the tests that need them skip and say why, except when
KILN_TEST_REQUIRE_SERVERS=1 (CI), where their absence fails the run.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get("KILN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("KILN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVERS = os.environ.get("KILN_TEST_REQUIRE_SERVERS") == "1"


def _unavailable(what: str, exc: Exception):
    message = f"{what} not reachable ({exc}); set KILN_TEST_POSTGRES_URL / KILN_TEST_REDIS_URL"
    if REQUIRE_SERVERS:
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def _fresh_database():
    """A new PostgreSQL database, dropped when the block ends."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    # NullPool: a test restarts PostgreSQL, and a pooled connection would not survive it.
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"kiln_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database for this test session, shared by the integration stacks."""
    with _fresh_database() as url:
        yield url


@pytest.fixture
def own_postgres_url():
    """A fresh database of the test's own: nothing it leaves behind reaches another test's workers."""
    with _fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Redis", exc)
    return REDIS_URL


@dataclass
class S3Server:
    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def new_bucket(self) -> str:
        name = f"kiln-test-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, endpoint: str | None = None) -> dict[str, str]:
        """The settings that point a Kiln process at ``bucket`` (through ``endpoint``, e.g. a proxy)."""
        return {
            "KILN_ARTIFACTS_URL": f"s3://{bucket}/kiln", "KILN_S3_ENDPOINT_URL": endpoint or self.endpoint,
            "KILN_S3_REGION": self.region, "KILN_S3_ACCESS_KEY_ID": self.access_key, "KILN_S3_SECRET_ACCESS_KEY": self.secret_key,
        }


def start_moto_server() -> tuple[subprocess.Popen, S3Server]:
    """moto's S3 server on a free port (the tests' and the benchmarks')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = S3Server(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while True:
        try:
            server.client().list_buckets()
            return proc, server
        except Exception as exc:  # noqa: BLE001
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start: {exc}") from exc
            time.sleep(0.2)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server on 127.0.0.1: KILN_TEST_S3_ENDPOINT (with KILN_TEST_S3_ACCESS_KEY and
    KILN_TEST_S3_SECRET_KEY) if set, e.g. MinIO; else moto's server, for this session."""
    if os.environ.get("KILN_TEST_S3_ENDPOINT"):
        server = S3Server(os.environ["KILN_TEST_S3_ENDPOINT"], os.environ.get("KILN_TEST_S3_ACCESS_KEY", "minioadmin"),
                          os.environ.get("KILN_TEST_S3_SECRET_KEY", "minioadmin"))
        try:
            server.client().list_buckets()
        except Exception as exc:  # noqa: BLE001
            _unavailable("the S3 server", exc)
        yield server
        return
    try:
        proc, server = start_moto_server()
    except (OSError, RuntimeError) as exc:
        _unavailable("moto_server", exc)
    try:
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
