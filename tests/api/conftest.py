"""API tests: the real app over the ASGI interface, a real SQLite database built by the
migrations, and the real embedded broker (nothing consumes it here; integration tests do)."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core import bootstrap, tenants
from app.core.db.engine import session_factory
from app.core.settings import Settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    s = Settings(data_dir=tmp_path_factory.mktemp("kiln"), max_request_bytes=64 * 1024)
    bootstrap.prepare(s)
    return s


@pytest.fixture(scope="module")
def client(settings) -> TestClient:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def new_key(settings):
    """Makes keys for fresh tenants, so each test sees only its own rows."""

    def make(tenant: str | None = None, scopes: list[str] | None = None) -> dict[str, str]:
        with session_factory(settings.database_url)() as session:
            t = tenants.get_or_create_tenant(session=session, name=tenant or f"t-{secrets.token_hex(4)}")
            _, key = tenants.create_key(session=session, tenant=t, scopes=scopes)
            session.commit()
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def auth(new_key) -> dict[str, str]:
    return new_key()


@pytest.fixture(scope="module")
def owner(settings, request) -> dict[str, str]:
    """A tenant shared by one module's tests, for the models it trains once."""
    with session_factory(settings.database_url)() as session:
        tenant = tenants.get_or_create_tenant(session=session, name=f"owner-{request.module.__name__.rsplit('.', 1)[-1]}")
        _, key = tenants.create_key(session=session, tenant=tenant)
        session.commit()
    return {"Authorization": f"Bearer {key}"}
