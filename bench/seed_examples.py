"""The survey's LeNet-5 and AlexNet listings (section 4 of ../shared/seed/deep-learning-survey.md)
as Kiln job specs, run through real processes on MNIST; prints the metrics for docs/seed-examples.md.

    python bench/seed_examples.py [--only lenet5|alexnet]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DEFAULT_MNIST_DIR, upload_mnist  # noqa: E402

from tests.integration.conftest import Stack, wait_for  # noqa: E402  (the harness the tests use)

# The listings as written: LeNet-5 with ReLU and max pooling, SGD(lr=0.001, momentum=0.9),
# cross entropy, 2 epochs; AlexNet with Adam(lr=0.001), cross entropy. Batch size is not in the
# listings: 64 here. AlexNet's listing is for 3x224x224 ImageNet; on MNIST and a CPU it runs with
# its small-input stem at half width.
SPECS = {
    "lenet5": lambda ds: {
        "name": "survey-lenet5", "model": {"architecture": "lenet5", "params": {"activation": "relu", "pooling": "max"}},
        "data": {"dataset": ds, "validation_fraction": 0.1},
        "training": {"epochs": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.001, "momentum": 0.9}},
    },
    "alexnet": lambda ds: {
        "name": "survey-alexnet", "model": {"architecture": "alexnet", "params": {"width": 0.5, "stem": "small"}},
        "data": {"dataset": ds, "validation_fraction": 0.1},
        "training": {"epochs": 2, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.001}},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    parser.add_argument("--only", choices=list(SPECS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("embedded", {}, Path(tmp))
        try:
            client = stack.start_service()
            dataset = upload_mnist(client, args.mnist_dir)
            for name, make in SPECS.items():
                if args.only and name != args.only:
                    continue
                spec = make(dataset["id"])
                started = time.perf_counter()
                job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], {"succeeded", "failed", "cancelled"}, timeout=7200)
                wall = time.perf_counter() - started
                model = client.get(f"/v1/models/{job['model_id']}").json() if job.get("model_id") else {}
                print(f"\n## {name}: {job['state']} in {wall:.0f} s, {model.get('parameter_count', 0):,} parameters")
                print(json.dumps({**spec, "data": {**spec["data"], "dataset": "<mnist dataset id>"}}, indent=1))
                print({k: round(v, 4) for k, v in job["metrics"].items()})
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
