"""The dashboard's render time in headless Chromium, big beside small in one run:

- the Jobs page's first page for a tenant with 1,000 jobs, beside one with 10 jobs;
- a job's curves for a job with 1,000,000 train_loss points, beside one with 1,000.

    python bench/dashboard_render.py [--jobs 1000] [--points 1000000] [--repeats 7]

The time is the browser's own (performance.now()), from setting the page's route to the moment its
rows (or the job's loss curve) are in the document, median of --repeats, each visit after another
page so that it renders from scratch. The jobs page should answer its first page in under a second
at any size, and a job's curves come from the downsampled series (max_points), so the ratios
big / small should stay near 1. Needs chromium and chromedriver (Debian: chromium chromium-driver).
"""

from __future__ import annotations

import argparse
import copy
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seeding import insert_batched, tenant_keys, train_loss_points  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

from app.core.db.engine import session_factory  # noqa: E402
from app.core.db.tables import Job, MetricPoint  # noqa: E402
from app.core.jobs import metric_rollups  # noqa: E402
from tests.integration.conftest import Stack  # noqa: E402
from tests.specs import LENET_JOB  # noqa: E402

# Sets the route, then waits a frame at a time until `selector` matches `count` elements.
TIMED_VISIT = """
const [route, selector, count, done] = arguments;
const start = performance.now();
location.hash = route;
const poll = () => document.querySelectorAll(selector).length >= count ? done(performance.now() - start) : requestAnimationFrame(poll);
poll();
"""


def fill(database_url: str, tenant_id: str, jobs: int, points: int) -> str:
    """``jobs`` finished jobs of the tenant, the newest with ``points`` train_loss points; its id."""
    sessions = session_factory(database_url)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = [f"job_{secrets.token_hex(16)}" for _ in range(jobs)]
    with sessions() as s:
        rows = []
        for i, job_id in enumerate(ids):
            spec = copy.deepcopy(LENET_JOB) | {"name": f"job {i}"}
            rows.append({"id": job_id, "tenant_id": tenant_id, "name": f"job {i}", "state": "succeeded", "spec": spec,
                         "created_at": start + timedelta(seconds=i), "started_at": start + timedelta(seconds=i),
                         "finished_at": start + timedelta(seconds=i + 30), "latest_metrics": {"val_accuracy": 0.96, "train_loss": 0.07},
                         "epochs": 10, "attempt": 1})
        insert_batched(s, Job, rows)
        s.commit()
    big = ids[-1]
    with sessions() as s:
        insert_batched(s, MetricPoint, train_loss_points(big, tenant_id, points, start))
        s.commit()
        metric_rollups.rebuild(session=s, tenant_id=tenant_id, job_id=big)
        s.commit()
    return big


def browser() -> webdriver.Chrome:
    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def timed(driver, route: str, selector: str, count: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        driver.execute_script("location.hash = '#/compare'")  # another page first: each visit renders from scratch
        time.sleep(0.2)
        times.append(driver.execute_async_script(TIMED_VISIT, route, selector, count))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("bench", {"KILN_RUN_RECONCILER": "false"}, Path(tmp))
        driver = None
        try:
            stack.kiln("db", "upgrade")
            created = tenant_keys(stack, ("bench-big", "bench-small"))
            keys = {size: created[f"bench-{size}"][0] for size in ("big", "small")}
            tenants = {size: created[f"bench-{size}"][1] for size in ("big", "small")}
            database_url = stack.settings().database_url
            t = time.perf_counter()
            jobs = {"big": fill(database_url, tenants["big"], args.jobs, args.points),
                    "small": fill(database_url, tenants["small"], 10, 1000)}
            print(f"filled {args.jobs + 10:,} jobs and {args.points + 1000:,} points in {time.perf_counter() - t:.0f} s", flush=True)
            stack.start_api()
            driver = browser()
            driver.set_script_timeout(60)
            results = {}
            for size in ("small", "big"):
                driver.get(stack.base_url + "/")
                driver.execute_script("sessionStorage.setItem('kiln.key', arguments[0])", keys[size])
                driver.get(stack.base_url + "/#/jobs")
                time.sleep(1)
                results[size] = (
                    timed(driver, "#/jobs", "#jobs tbody tr[data-job]", 10, args.repeats),
                    timed(driver, f"#/jobs/{jobs[size]}", "[data-chart='loss'] path[data-series='train_loss']", 1, args.repeats),
                )
            print(f"{'page':<44}{'small':>10}{'big':>10}{'big/small':>11}")
            for i, what in enumerate((f"Jobs, first page (10 vs {args.jobs:,} jobs)", f"Job curves (1,000 vs {args.points:,} points)")):
                small, big = results["small"][i], results["big"][i]
                print(f"{what:<44}{small:>8.0f}ms{big:>8.0f}ms{big / small:>11.2f}")
        finally:
            if driver is not None:
                driver.quit()
            stack.stop()


if __name__ == "__main__":
    main()
