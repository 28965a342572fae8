"""The real servers the suite talks to besides the embedded default: PostgreSQL and Redis.

Each run gets a fresh PostgreSQL database (dropped at the end) and its own Redis queue name.
Where the servers are absent the tests that need them skip and say why, except when
KILN_TEST_REQUIRE_SERVERS=1 (CI), where their absence fails the run.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager

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
