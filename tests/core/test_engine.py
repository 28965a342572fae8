"""SQLite under several processes: writers take the write lock up front, readers take none."""

from __future__ import annotations

import threading

from sqlalchemy import select, update

from app.core import bootstrap, tenants
from app.core.db.engine import read_only, session_factory
from app.core.db.tables import Tenant
from app.core.settings import Settings


def test_a_long_read_does_not_hold_the_write_lock(tmp_path):
    """A read route holding its session open (a preview being drawn, an export being built) must not
    stall the heartbeats that keep leases alive."""
    settings = Settings(data_dir=tmp_path)
    bootstrap.prepare(settings)
    sessions = session_factory(settings.database_url)
    with sessions() as s:
        tenants.get_or_create_tenant(session=s, name="t")
        s.commit()
    written = threading.Event()

    def write():
        with sessions() as s:
            s.execute(update(Tenant).values(name="renamed"))
            s.commit()
        written.set()

    with read_only(sessions()) as reader:
        assert reader.scalar(select(Tenant.name)) == "t"  # the read transaction is open from here
        writer = threading.Thread(target=write)
        writer.start()
        assert written.wait(5), "the writer waited for the reader's transaction"
        writer.join()
