"""The database's clock, as SQL: leases are claimed, renewed, expired and repaired in the
database's time, so a host whose clock runs ahead (or behind) cannot steal a live job or keep a
dead one. Compiled per dialect; on SQLite in the text form SQLAlchemy stores datetimes in."""

from __future__ import annotations

from sqlalchemy import literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from app.core.db.types import UTCDateTime


class db_now(FunctionElement):  # noqa: N801 - reads as the SQL function it is
    """Now, plus ``seconds`` (which may be negative)."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, seconds: float = 0.0):
        super().__init__(literal(float(seconds)))


@compiles(db_now, "postgresql")
def _postgresql(element, compiler, **kw):
    (seconds,) = element.clauses
    return f"(now() + make_interval(secs => {compiler.process(seconds, **kw)}))"


@compiles(db_now, "sqlite")
def _sqlite(element, compiler, **kw):
    # strftime's %f gives milliseconds; SQLAlchemy stores (and compares as text) six digits.
    (seconds,) = element.clauses
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', {compiler.process(seconds, **kw)} || ' seconds') || '000')"


class db_clock_now(db_now):  # noqa: N801
    """Now as the statement runs, not as its transaction began (PostgreSQL's now()): for a time
    that must not be earlier than what the transaction read, such as an alias move's."""

    inherit_cache = True


@compiles(db_clock_now, "postgresql")
def _postgresql_clock(element, compiler, **kw):
    (seconds,) = element.clauses
    return f"(clock_timestamp() + make_interval(secs => {compiler.process(seconds, **kw)}))"
