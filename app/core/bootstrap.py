"""First start of the embedded default: folders, schema, broker file, the default tenant's key."""

from __future__ import annotations

import os

from app.core import tenants
from app.core.db import migrate
from app.core.db.engine import session_factory
from app.core.queue import prepare_sql_broker
from app.core.settings import Settings

DEFAULT_TENANT = "default"


def prepare(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.artifacts_url:
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url)
    prepare_sql_broker(settings)


def ensure_default_key(settings: Settings) -> str | None:
    """Creates the default tenant and its first key once, into ``api_key_file`` (mode 600).
    Returns the new key's prefix, or None if the tenant had a key."""
    with session_factory(settings.database_url)() as session:
        tenant = tenants.get_or_create_tenant(session=session, name=DEFAULT_TENANT)
        if tenants.has_keys(session=session, tenant=tenant):
            session.commit()
            return None
        key, secret = tenants.create_key(session=session, tenant=tenant, name="first key (kiln up)")
        session.commit()
    fd = os.open(settings.api_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(settings.api_key_file, 0o600)
    return key.prefix
