"""The datasets issue's end-to-end check, through real processes: upload the four MNIST IDX
files to `kiln api`, train LeNet-5 for 10 epochs on a `kiln worker`, report test accuracy
(LeCun et al. 1998: 99.05 %) and wall times.

    python bench/mnist_lenet5.py [--epochs 10] [--backend embedded|postgres+redis]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DEFAULT_MNIST_DIR, upload_mnist  # noqa: E402

from tests.integration.conftest import Stack, wait_for  # noqa: E402  (the harness the tests use)


def job_spec(dataset_id: str, epochs: int) -> dict:
    return {
        "name": "lenet5-mnist",
        "model": {"architecture": "lenet5", "params": {"activation": "relu"}},
        "data": {"dataset": dataset_id, "validation_fraction": 0.1},
        "training": {
            "epochs": epochs, "batch_size": 64,
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005},
            "lr_schedule": {"name": "cosine", "warmup_epochs": 1},
        },
        "seed": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backend", choices=["embedded", "postgres+redis"], default="embedded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {}
        if args.backend == "postgres+redis":
            env = {"KILN_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
                   "KILN_BROKER_URL": "redis://127.0.0.1:6379/0", "KILN_QUEUE_NAME": f"kiln.bench.{secrets.token_hex(4)}"}
        stack = Stack(args.backend, env, Path(tmp))
        try:
            client = stack.start_service()
            start = time.perf_counter()
            dataset = upload_mnist(client, args.mnist_dir)
            uploaded = time.perf_counter() - start
            submitted = time.perf_counter()
            job = client.post("/v1/jobs", json=job_spec(dataset["id"], args.epochs)).json()
            job = wait_for(client, job["id"], {"succeeded", "failed", "cancelled"}, timeout=3600)
            trained = time.perf_counter() - submitted
            print(f"upload: {uploaded:.1f} s ({dataset['num_samples']} train + {dataset['num_test_samples']} test images)")
            print(f"job {job['state']} in {trained:.0f} s wall (submit to succeeded), {args.epochs} epochs")
            for name in ("test_accuracy", "test_loss", "val_accuracy", "train_loss", "samples_per_second"):
                print(f"  {name:18s} {job['metrics'].get(name)}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
