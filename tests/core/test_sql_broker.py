"""The embedded (SQL) broker is fully made before any process sends or polls.

kombu makes its tables and the queue's row lazily, on a process's first send or poll. When the
API's first send and a new worker's first poll race for that row, the loser's session is left
needing a rollback kombu never does, and every later poll of that worker fails: it stays up and
never trains. CI saw exactly that. Made once by `kiln db upgrade` (and `kiln up`, and each worker
start), there is nothing left for two processes to race for.
"""

from __future__ import annotations

import multiprocessing

from kombu import Connection
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.api.broker import Broker
from app.core import bootstrap
from app.core.queue import RUN_JOB_TASK, broker_transport_options
from app.core.settings import Settings


def _first_send_and_poll(data_dir: str, out) -> None:
    """A fresh process's first send and first poll, recording every write they make to the broker."""
    settings = Settings(data_dir=data_dir)
    writes: list[str] = []
    # Every engine of this process, kombu's included, from before its first connection.
    event.listen(Engine, "before_cursor_execute", lambda _c, _cur, sql, *_: writes.append(" ".join(sql.split())[:40]))
    with Connection(settings.broker_url, transport_options=broker_transport_options(settings)) as conn:
        channel = conn.default_channel
        Broker(settings).send("job_abc", "any")
        try:
            message = channel._get(settings.queue_name)
        except Exception as exc:  # kombu's Empty would mean the message was lost
            message = repr(exc)
    out.send((writes, message))


def run_fresh_process(data_dir) -> tuple[list[str], object]:
    receive, send = multiprocessing.Pipe(duplex=False)
    proc = multiprocessing.get_context("spawn").Process(target=_first_send_and_poll, args=(str(data_dir), send))
    proc.start()
    result = receive.recv()
    proc.join(30)
    return result


def test_after_prepare_no_process_creates_broker_tables_or_the_queue_row(tmp_path):
    bootstrap.prepare(Settings(data_dir=tmp_path))

    writes, message = run_fresh_process(tmp_path)

    racy = [sql for sql in writes if sql.startswith("CREATE TABLE") or sql.startswith("INSERT INTO kombu_queue")]
    assert racy == [], f"first send/poll still makes broker schema: {racy}"
    assert isinstance(message, dict) and message["headers"]["task"] == RUN_JOB_TASK, message


def test_prepare_twice_keeps_one_queue_row(tmp_path):
    settings = Settings(data_dir=tmp_path)
    bootstrap.prepare(settings)
    bootstrap.prepare(settings)
    with Connection(settings.broker_url) as conn:
        channel = conn.default_channel
        assert channel.session.query(channel.queue_cls).filter_by(name=settings.queue_name).count() == 1
