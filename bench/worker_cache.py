"""Time to first step with the artifact store in an S3 server: a worker's first job on a dataset
fetches it into the host's cache; the second finds it there.

    python bench/worker_cache.py [--mnist-dir ../shared/datasets/mnist] [--repeats 2]

Real processes: moto's S3 server, `kiln api`, one `kiln worker` (embedded database and broker).
MNIST (60,000 + 10,000 images, IDX) is uploaded once. Each repeat empties the worker's cache, then
runs two jobs on the dataset; the time to first step runs from the job's start (the database's
started_at) until its progress shows a step (heartbeats every 0.1 s here). The cache saves the
fetch; the rest (reading the arrays, preprocessing, building the network) is paid by both jobs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DEFAULT_MNIST_DIR, MNIST_FILES  # noqa: E402

from tests.conftest import start_moto_server  # noqa: E402
from tests.integration.conftest import Stack  # noqa: E402  (the harness the tests use)

SPEC = {"model": {"architecture": "lenet5"}, "training": {"epochs": 1, "batch_size": 64}}


def time_to_first_step(client, dataset_id: str, name: str) -> float:
    job = client.post("/v1/jobs", json={**SPEC, "name": name, "data": {"dataset": dataset_id, "validation_fraction": 0.1}}).json()
    while True:
        seen = time.time()
        state = client.get(f"/v1/jobs/{job['id']}").json()
        if state["progress"]["step"] > 0:
            client.post(f"/v1/jobs/{job['id']}/cancel")
            return seen - datetime.fromisoformat(state["started_at"]).timestamp()
        if state["state"] in ("failed", "cancelled", "succeeded"):
            raise SystemExit(f"job {job['id']} ended {state['state']} before its first step: {state['error']}")
        time.sleep(0.02)


def wait_idle(client) -> None:
    while any(j["state"] in ("queued", "running") for j in client.get("/v1/jobs").json()["items"]):
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    moto, server = start_moto_server()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("embedded", {**server.env(server.new_bucket()), "KILN_HEARTBEAT_SECONDS": "0.1"}, Path(tmp) / "kiln")
        try:
            stack.kiln("db", "upgrade")
            stack.start_api()
            stack.start_worker()
            client = stack.new_tenant()
            files = [("file", (n, open(args.mnist_dir / n, "rb"))) for n in MNIST_FILES]
            dataset = client.post("/v1/datasets", data={"name": "mnist", "format": "idx"}, files=files, timeout=600).json()
            cache = Path(tmp) / "kiln" / "cache"
            print(f"MNIST in the store: {dataset['size_bytes'] / 1e6:.1f} MB")
            print(f"{'repeat':>6s} {'first job s':>12s} {'second job s':>13s} {'second/first':>13s}")
            for r in range(args.repeats):
                wait_idle(client)
                shutil.rmtree(cache, ignore_errors=True)
                cold = time_to_first_step(client, dataset["id"], f"cold-{r}")
                wait_idle(client)
                warm = time_to_first_step(client, dataset["id"], f"warm-{r}")
                print(f"{r:6d} {cold:12.2f} {warm:13.2f} {warm / cold:13.2f}")
            print(f"fetches in the worker's log: {stack.worker_logs().count('fetched datasets/')} (one per repeat)")
        finally:
            stack.stop()
            moto.terminate()


if __name__ == "__main__":
    main()
