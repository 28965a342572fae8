"""Engines and sessions. SQLite gets WAL and a busy timeout: the API, the worker and the
reconciler write to the same file from several processes."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_pre_ping=False,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own deferred BEGIN is bypassed).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


READ_ONLY = {"kiln_read_only": True}


def read_only(session: Session) -> Session:
    """Marks a session that only reads (call before its first statement): on SQLite its transaction
    takes no write lock, so a read held open (a preview being drawn) never stalls heartbeats."""
    session.connection(execution_options=READ_ONLY)
    return session


def _sqlite_begin_immediate(conn) -> None:
    # A deferred transaction that later writes fails at once with "database is locked" when another
    # process wrote in between (the busy timeout does not apply to that upgrade). Taking the write
    # lock up front makes every writer wait its turn instead; a reader (in WAL mode) needs no lock.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("kiln_read_only") else "BEGIN IMMEDIATE")


def reachable(session: Session) -> bool:
    """Whether the database answers a trivial query (readiness)."""
    try:
        session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - reported, not raised
        return False
