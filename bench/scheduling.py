"""Who runs next, measured: fair share with real workers, and what a claim costs with 10,000 jobs queued.

    python bench/scheduling.py [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--skip-workers]

1. Real processes (`kiln api`, two `kiln worker`, the embedded default): tenant A submits 40 short
   jobs, then tenants B and C submit 4 each. Prints the order jobs started in, and for B and C how
   many jobs started after their submit up to and including their first: at most 2 means it
   started within the next two free worker slots, not after A's 40.
2. `scheduling.claim_next` against a database with 100 and then 10,000 queued jobs over 10 tenants
   (priorities mixed, some tenants with running jobs): milliseconds per claim (each its own
   transaction, committed), on SQLite and, with --postgres, on PostgreSQL.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from app.core import bootstrap, tenants  # noqa: E402
from app.core.db.engine import session_factory  # noqa: E402
from app.core.db.tables import Job  # noqa: E402
from app.core.jobs import scheduling  # noqa: E402
from app.core.settings import Settings  # noqa: E402
from tests.integration.conftest import Stack  # noqa: E402  (the harness the tests use)

SHORT = {"model": {"architecture": "mlp", "params": {"hidden_sizes": [32]}}, "data": {"dataset": "builtin:digits"},
         "training": {"epochs": 1, "batch_size": 128}}


def fair_share() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("embedded", {}, Path(tmp) / "kiln")
        try:
            stack.kiln("db", "upgrade")
            stack.start_api()
            stack.start_worker()
            stack.start_worker()
            clients = {name: stack.new_tenant() for name in "ABC"}
            submitted: dict[str, float] = {}
            jobs: dict[str, list[str]] = {name: [] for name in "ABC"}
            for name, count in (("A", 40), ("B", 4), ("C", 4)):
                if name != "A":
                    time.sleep(2.0)  # A's first jobs are running by now
                submitted[name] = time.time()
                jobs[name] = [clients[name].post("/v1/jobs", json={**SHORT, "name": f"{name}{i}"}).json()["id"] for i in range(count)]
            started = []
            for name, ids in jobs.items():
                for job_id in ids:
                    while (job := clients[name].get(f"/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed"):
                        time.sleep(0.2)
                    started.append((datetime.fromisoformat(job["started_at"]).timestamp(), name, job["state"]))
            started.sort()
            print("1. two workers; A submits 40 short jobs, then B and C 4 each (2 s apart)")
            print("   start order: " + "".join(name for _, name, _ in started))
            for name in "BC":
                after = [n for t, n, _ in started if t >= submitted[name]]
                places = [i + 1 for i, n in enumerate(after) if n == name]
                print(f"   {name}: its jobs were starts {places} after its submit; the first "
                      f"{'within' if places[0] <= 2 else 'NOT within'} the next two free worker slots")
            failed = sum(1 for *_, state in started if state != "succeeded")
            print(f"   jobs failed: {failed}")
        finally:
            stack.stop()


def fill(sessions, queued: int, tenant_ids: list[str]) -> None:
    rng = random.Random(0)
    now = datetime.now(timezone.utc)
    rows = [{"id": f"job_{secrets.token_hex(16)}", "tenant_id": rng.choice(tenant_ids), "name": "bench", "state": "queued",
             "spec": {}, "priority": rng.choice([0, 0, 0, 1, -1]), "device": rng.choice(["any", "any", "cpu"]),
             "created_at": now - timedelta(seconds=queued - i), "latest_metrics": {}} for i in range(queued)]
    with sessions() as s:
        for start in range(0, len(rows), 2000):
            s.execute(Job.__table__.insert(), rows[start:start + 2000])
        s.commit()
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("ANALYZE jobs"))  # what autovacuum does after such a load; plans otherwise assume an empty table
            s.commit()


def claim_cost(database_url: str, label: str, claims: int = 50) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=tmp, database_url=database_url)
        bootstrap.prepare(settings)
        sessions = session_factory(settings.database_url)
        with sessions() as s:
            tenant_ids = [tenants.get_or_create_tenant(session=s, name=f"t{i}-{secrets.token_hex(3)}").id for i in range(10)]
            s.commit()
        results, have = {}, 0
        for queued in (100, 10_000):
            fill(sessions, queued - have, tenant_ids)
            have = queued
            start = time.perf_counter()
            for i in range(claims):
                with sessions() as s:
                    job = scheduling.claim_next(session=s, worker_id=f"bench-{i}", device="cpu", lease_seconds=60)
                    s.commit()
                assert job is not None
            results[queued] = (time.perf_counter() - start) / claims * 1000
            fill(sessions, claims, tenant_ids)  # back to the queue's size before the claims
        print(f"   {label:10s} {results[100]:8.2f} ms at 100 queued, {results[10_000]:8.2f} ms at 10,000 queued "
              f"({results[10_000] / results[100]:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="an admin URL of a PostgreSQL server: a database is made for the run")
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args()
    if not args.skip_workers:
        fair_share()
    print("2. claim_next: ms per claim (each its own committed transaction)")
    claim_cost("", "SQLite")
    if args.postgres:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        name = f"kiln_bench_{secrets.token_hex(4)}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            claim_cost(make_url(args.postgres).set(database=name).render_as_string(hide_password=False), "PostgreSQL")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
