"""Every family trained through the REST API on built-in data, with real processes: dataset,
epochs, the metric reached and the wall time, per architecture (the configurations of
tests/integration/test_zoo_service.py).

    python bench/zoo_rest.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.conftest import Stack, wait_for  # noqa: E402  (the harness the tests use)
from tests.integration.test_zoo_service import CLASSIFIERS, DIGITS  # noqa: E402

GENERATIVE = {
    "gan": ({"latent_dim": 16, "width": 16}, DIGITS, 5, {"name": "adam", "lr": 0.0005}, ("d_real_accuracy", "d_fake_accuracy", "g_loss")),
    "rbm": ({"hidden": 32, "k": 1}, DIGITS, 5, {"name": "sgd", "lr": 0.05, "momentum": 0.5}, ("reconstruction_error", "pseudo_log_likelihood")),
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("embedded", {}, Path(tmp))
        try:
            client = stack.start_service()
            print(f"{'architecture':12s} {'dataset':26s} {'epochs':>6s} {'wall s':>7s}  metrics")
            cases = {name: (*cfg[:4], ("val_accuracy",)) for name, cfg in CLASSIFIERS.items()} | GENERATIVE
            for name, (params, dataset, epochs, optimizer, shown) in cases.items():
                spec = {"name": name, "model": {"architecture": name, "params": params},
                        "data": {"dataset": dataset, "validation_fraction": 0.2},
                        "training": {"epochs": epochs, "batch_size": 32, "optimizer": optimizer}, "seed": 0}
                start = time.perf_counter()
                job = wait_for(client, client.post("/v1/jobs", json=spec).json()["id"], {"succeeded", "failed", "cancelled"}, timeout=900)
                wall = time.perf_counter() - start
                metrics = ", ".join(f"{m} {job['metrics'].get(m, float('nan')):.3f}" for m in shown)
                print(f"{name:12s} {dataset:26s} {epochs:6d} {wall:7.1f}  {job['state']}: {metrics}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
