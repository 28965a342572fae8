"""Scale of the job store: the API's reads at 1,000 jobs / 10,000 metric points and at 100,000
jobs / 10,000,000 points, side by side in one run.

    python bench/scale.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres [--sqlite]
    python bench/scale.py --postgres URL --jobs 100000 --points 10000000   (the defaults)

For each database: a fresh database filled with batched inserts (10 tenants; jobs mostly
succeeded, some running, failed, queued; one job holding a tenth of the points, up to 1,000,000,
the rest over 1,000 other jobs), analyzed as autovacuum would, then a real `kiln api` process
answers, for one tenant (a tenth of the jobs): the first page of GET /v1/jobs, a page filtered by
state, the 100th page by cursor (pages of 1, so it exists at both sizes), GET /v1/jobs/{id}, and
the big job's train_loss downsampled (max_points=1000). p50 of 30 requests each; the ratio full /
small should stay under 1.5 (the cost is O(page), not O(table)). --sqlite does the same on the
embedded database at --sqlite-jobs / --sqlite-points (100,000 / 1,000,000).
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seeding import insert_batched, tenant_keys, train_loss_points  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.core.db.engine import session_factory  # noqa: E402
from app.core.db.tables import Job, MetricPoint  # noqa: E402
from app.core.jobs import metric_rollups  # noqa: E402
from tests.integration.conftest import Stack  # noqa: E402

STATES = ["succeeded"] * 14 + ["failed", "running", "queued"] * 2  # a tenth running


def fill(database_url: str, jobs: int, points: int, tenant_ids: list[str]) -> tuple[str, str]:
    """Jobs and points as the API would have written them, spread over ten tenants; (a job id of
    the first tenant, the big job's id: the first tenant's too)."""
    rng = random.Random(0)
    sessions = session_factory(database_url)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    job_ids = [f"job_{secrets.token_hex(16)}" for _ in range(jobs)]
    with sessions() as s:
        insert_batched(s, Job, ({"id": job_id, "tenant_id": tenant_ids[i % 10], "name": f"job {i}", "state": rng.choice(STATES),
                                 "spec": {"name": f"job {i}"}, "created_at": start + timedelta(seconds=i), "latest_metrics": {},
                                 "epochs": 10, "attempt": 1} for i, job_id in enumerate(job_ids)))
        s.commit()
    big = job_ids[0]  # key_tenant's
    others = job_ids[10:1010:10] or job_ids[1:]
    big_points = points // 10
    tenant_of = {job_id: tenant_ids[i % 10] for i, job_id in enumerate(job_ids[:1010])}
    with sessions() as s:
        plan = [(big, big_points)] + [(job_id, (points - big_points) // len(others)) for job_id in others]
        insert_batched(s, MetricPoint, (point for job_id, n in plan
                                        for point in train_loss_points(job_id, tenant_of[job_id], n, start, lambda: rng.random() * 0.01)))
        s.commit()
    t = time.perf_counter()
    with sessions() as s:  # what the migration does for points written before roll-ups; tested equal to the live ones
        for job_id, _ in plan:
            metric_rollups.rebuild(session=s, tenant_id=tenant_of[job_id], job_id=job_id)
            s.commit()
    print(f"   rolled up {points:,} points in {time.perf_counter() - t:.0f} s", flush=True)
    # What autovacuum (or SQLite's optimize) does after such a load, done now so that it does not
    # run during the timing: on 2 cores a vacuum of 10M fresh rows doubled some p50s.
    engine = sessions.kw["bind"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    return job_ids[10], big


def p50(client, path: str, params: dict | None = None, repeats: int = 30) -> float:
    first = client.get(path, params=params).json()  # warm
    if "items" in first:
        assert len(first["items"]) == params["limit"], f"{path} {params}: a page of {len(first['items'])}, not full"
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = client.get(path, params=params)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text
    return statistics.median(times) * 1000


def measure(env: dict[str, str], jobs: int, points: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("bench", {**env, "KILN_RUN_RECONCILER": "false", "KILN_RATE_LIMIT_PREDICT": "", "KILN_RATE_LIMIT_SUBMIT": ""},
                      Path(tmp))
        try:
            stack.kiln("db", "upgrade")
            tenants = tenant_keys(stack, [f"bench-{i}" for i in range(10)])
            key = tenants["bench-0"][0]
            database_url = stack.settings().database_url
            t = time.perf_counter()
            one_job, big = fill(database_url, jobs, points, [tenants[f"bench-{i}"][1] for i in range(10)])
            print(f"   filled {jobs:,} jobs and {points:,} points in {time.perf_counter() - t:.0f} s", flush=True)
            stack.start_api()
            import httpx

            client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            cursor = None
            for _ in range(99):
                cursor = client.get("/v1/jobs", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()["next_cursor"]
            return {
                "GET /v1/jobs (first page of 50)": p50(client, "/v1/jobs", {"limit": 50}),
                # Pages of 5: full at both sizes (about 10 of the tenant's 100 jobs run at the small size).
                "GET /v1/jobs?state=running (a page of 5)": p50(client, "/v1/jobs", {"limit": 5, "state": "running"}),
                "GET /v1/jobs, the 100th page (by cursor)": p50(client, "/v1/jobs", {"limit": 1, "cursor": cursor}),
                "GET /v1/jobs/{id}": p50(client, f"/v1/jobs/{one_job}"),
                "metrics of the big job, max_points=1000": p50(client, f"/v1/jobs/{big}/metrics", {"names": "train_loss", "max_points": 1000}),
            }
        finally:
            stack.stop()


def report(label: str, env_for, sizes: list[tuple[int, int]]) -> None:
    print(f"{label}:", flush=True)
    results = [measure(env_for(), jobs, points) for jobs, points in sizes]
    (small_jobs, small_points), (jobs, points) = sizes
    print(f"   {'read':44s} {f'{small_jobs:,}/{small_points:,}':>16s} {f'{jobs:,}/{points:,}':>18s} {'ratio':>6s}")
    for name in results[0]:
        a, b = results[0][name], results[1][name]
        print(f"   {name:44s} {a:13.2f} ms {b:15.2f} ms {b / a:6.2f} {'ok' if b / a <= 1.5 else 'OVER 1.5'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="an admin URL of a PostgreSQL server: a database is made per size")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--sqlite-jobs", type=int, default=100_000)
    parser.add_argument("--sqlite-points", type=int, default=1_000_000)
    args = parser.parse_args()
    made: list[str] = []
    if args.postgres:
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")

        def pg_env() -> dict[str, str]:
            name = f"kiln_scale_{secrets.token_hex(4)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            made.append(name)
            return {"KILN_DATABASE_URL": make_url(args.postgres).set(database=name).render_as_string(hide_password=False)}

        try:
            report("PostgreSQL", pg_env, [(1_000, 10_000), (args.jobs, args.points)])
        finally:
            with admin.connect() as conn:
                for name in made:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if args.sqlite:
        report("SQLite", dict, [(1_000, 10_000), (args.sqlite_jobs, args.sqlite_points)])


if __name__ == "__main__":
    main()
