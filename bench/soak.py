"""Soak: many short jobs while workers are killed and restarted at random. Counts jobs lost and
jobs run twice; both must be 0.

    python bench/soak.py [--jobs 50] [--workers 2] [--backend embedded|postgres+redis] [--seed 0]

Chaos: every 1-4 s one random worker gets SIGKILL (its whole process group, as an OOM-kill) or
SIGTERM (a node drain), and a replacement starts. Bounded: it stops by itself after --max-seconds.

- lost: a job not in a terminal state when the run ends, or failed for a reason other than its own.
- duplicated: a job with more than one model, or whose attempts overlapped (two trainers at once).
"""

from __future__ import annotations

import argparse
import random
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402

from tests.integration.conftest import FAST_REPAIRS, Stack  # noqa: E402  (the harness the tests use)
from tests.specs import SHORT_JOB  # noqa: E402

JOB = {**SHORT_JOB, "name": "soak", "training": {**SHORT_JOB["training"], "epochs": 4, "batch_size": 32}}

TERMINAL = {"succeeded", "failed", "cancelled"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", choices=["embedded", "postgres+redis"], default="embedded")
    parser.add_argument("--postgres-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(FAST_REPAIRS, KILN_MAX_ATTEMPTS="20", KILN_WORKER_THREADS="1")
        dbname = None
        if args.backend == "postgres+redis":
            dbname = f"kiln_soak_{secrets.token_hex(4)}"
            admin = create_engine(args.postgres_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{dbname}"'))
            env |= {
                "KILN_DATABASE_URL": args.postgres_admin_url.rsplit("/", 1)[0] + f"/{dbname}",
                "KILN_BROKER_URL": args.redis_url,
                "KILN_QUEUE_NAME": f"kiln.soak.{secrets.token_hex(4)}",
            }
        stack = Stack(args.backend, env, Path(tmp))
        try:
            return soak(stack, args, rng)
        finally:
            stack.stop()
            if dbname:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


def soak(stack: Stack, args, rng: random.Random) -> int:
    stack.kiln("db", "upgrade")
    stack.start_api()
    workers = [stack.start_worker() for _ in range(args.workers)]
    client = stack.new_tenant()
    started = time.monotonic()
    ids = [client.post("/v1/jobs", json={**JOB, "seed": i}).json()["id"] for i in range(args.jobs)]
    kills: Counter[str] = Counter()
    states: dict[str, dict] = {}
    next_kill = time.monotonic() + rng.uniform(1, 4)
    while time.monotonic() - started < args.max_seconds:
        states = {j["id"]: j for j in client.get("/v1/jobs", params={"limit": 200}).json()["items"]}
        if all(states[i]["state"] in TERMINAL for i in ids):
            break
        if time.monotonic() >= next_kill:
            victim = rng.randrange(len(workers))
            sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
            stack.signal_group(workers[victim], sig)
            kills[signal.Signals(sig).name] += 1
            workers[victim] = stack.start_worker()
            next_kill = time.monotonic() + rng.uniform(1, 4)
        time.sleep(0.2)
    wall = time.monotonic() - started

    engine = create_engine(stack.settings().database_url)
    with engine.connect() as c:
        models_per_job = dict(c.execute(text("SELECT job_id, count(*) FROM models GROUP BY job_id")).all())
    engine.dispose()
    logs = stack.worker_logs()
    overlaps = sum(1 for i in ids if _attempts_overlap(logs, i))
    final = Counter(states[i]["state"] for i in ids)
    lost = sum(1 for i in ids if states[i]["state"] not in TERMINAL or states[i]["state"] == "failed")
    duplicated = sum(1 for i in ids if models_per_job.get(i, 0) > 1) + overlaps
    attempts = Counter(states[i]["attempt"] for i in ids)

    print(f"backend {args.backend}: {args.jobs} jobs, {args.workers} workers, {wall:.0f} s")
    print(f"kills: {dict(kills)}")
    print(f"final states: {dict(final)}")
    print(f"attempts per job: {dict(sorted(attempts.items()))}")
    print(f"lost: {lost}   duplicated: {duplicated}")
    return 0 if lost == 0 and duplicated == 0 else 1


def _attempts_overlap(logs: str, job_id: str) -> bool:
    """True if an attempt started before the previous one of the same job had stopped running.

    Each attempt's "attempt N on" line comes from the worker that claimed it; a claim needs the
    previous lease gone, so attempt numbers are strictly increasing and never repeated."""
    numbers = [int(n) for n in re.findall(rf"job {job_id}: attempt (\d+) on", logs)]
    return len(numbers) != len(set(numbers))


if __name__ == "__main__":
    sys.exit(main())
