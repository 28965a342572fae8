"""Predict under load: `kiln api` serving a LeNet-5 trained on MNIST, driven by wrk with
single-sample requests from 64 connections, batching off (KILN_PREDICT_MAX_BATCH=1) and on, in
the same run; then the model alone (no HTTP) at the same batch size, which is this machine's
limit; then TorchServe tuned (../shared/peers/torchserve) with the same body and load.

    python bench/predict_load.py [--duration 15] [--api-workers 2] [--no-peer] [--limit-pairs 2] [--redis-limits URL] [--metrics-pairs 2] [--lane-runs 1]

Then the three lanes to the same prediction, batching on, --lane-runs rounds: /v1 JSON, /v1 .npy
(application/x-npy) and the inference protocol's /v2 infer with binary tensors, each with the API
processes' CPU microseconds per request (psutil, over the wrk run), beside TorchServe tuned.

Rate limits on against off (batching on, alternated pairs): the limit is set far above the load,
so the ratio is what counting each request costs. Prometheus metrics on against off, the same way
(KILN_METRICS_ENABLED): what counting each predict request and forward pass costs.

Needs wrk (apt-get install wrk). Both servers get the same body: one real 28x28 MNIST test image
in Kiln's predict JSON. Also runs a batch-inference job over the 10,000 test images and prints its
accuracy beside the one the training job reported.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DEFAULT_MNIST_DIR, read_idx, upload_mnist  # noqa: E402

from tests.integration.conftest import Stack, wait_for  # noqa: E402  (the harness the tests use)

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "torchserve" / "run_torchserve.py"

LENET_JOB = {
    "name": "lenet5-mnist-serving",
    "model": {"architecture": "lenet5", "params": {"activation": "relu"}},
    "training": {"epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
    "seed": 0,
}


def wrk(url: str, key: str, body: Path, seconds: int, connections: int, workdir: Path, headers: dict[str, str] | None = None) -> dict:
    script = workdir / "post.lua"
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {key}", **(headers or {})}
    script.write_text(
        'wrk.method = "POST"\n' + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in sent.items())
        + f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout

    def ms(text: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
        return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    if "Requests/sec" not in out:
        raise SystemExit("wrk gave no figures:\n" + out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1)),
        "p50": ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),
        "p99": ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


# Rate limits on, set far above this load, so the runs measure what counting costs, not refusals.
LIMIT_ON = "10000000/second"


@dataclass(frozen=True)
class Lane:
    """One way to ask for the same prediction: its path, body file and headers."""

    path: str  # {model} is the model id
    body: str  # a file name in the run's folder
    headers: tuple[tuple[str, str], ...] = ()


LANES = {
    "v1 json": Lane("/v1/models/{model}/predict", "body.json"),
    "v1 npy": Lane("/v1/models/{model}/predict", "body.npy", (("Content-Type", "application/x-npy"),)),
    "v2 binary": Lane("/v2/models/{model}/infer", "body.v2", (("Content-Type", "application/octet-stream"),)),  # + the header length
}


def lane_bodies(folder: Path, image: np.ndarray) -> dict[str, dict[str, str]]:
    """Writes each lane's body for one 28x28 sample; the extra headers each needs."""
    (folder / "body.json").write_text(json.dumps({"inputs": [image.tolist()]}))
    npy = io.BytesIO()
    np.save(npy, image[None].astype(np.uint8))
    (folder / "body.npy").write_bytes(npy.getvalue())
    sample = image[None].astype(np.float32)
    header = json.dumps({"inputs": [{"name": "samples", "datatype": "FP32", "shape": list(sample.shape),
                                     "parameters": {"binary_data_size": sample.nbytes}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                                     {"name": "predictions", "parameters": {"binary_data": True}}]}).encode()
    (folder / "body.v2").write_bytes(header + sample.tobytes())
    return {"v1 json": {}, "v1 npy": {}, "v2 binary": {"Inference-Header-Content-Length": str(len(header))}}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the API's workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def serve_and_load(stack: Stack, key: str, model_id: str, body: Path, args, *, max_batch: int, env: dict[str, str],
                   lane: str = "v1 json", extra: dict[str, str] | None = None) -> dict:
    """Starts `kiln api --workers N` with the batch limit and ``env``, warms it, loads it with wrk
    through ``lane``, stops it; with the API's CPU microseconds per request."""
    stack.env.update({"KILN_PREDICT_MAX_BATCH": str(max_batch), **env})
    api = stack.start_api("--workers", str(args.api_workers))
    try:
        chosen = LANES[lane]
        url = stack.base_url + chosen.path.format(model=model_id)
        headers = {**dict(chosen.headers), **(extra or {})}
        lane_body = body.parent / chosen.body
        wrk(url, key, lane_body, 3, args.connections, stack.data_dir, headers)  # every process loads the model and warms up
        cpu = process_cpu_seconds(api.pid)
        result = wrk(url, key, lane_body, args.duration, args.connections, stack.data_dir, headers)
        result["cpu_us"] = (process_cpu_seconds(api.pid) - cpu) / max(1, result["requests"]) * 1e6
        return result
    finally:
        stack.processes.remove(api)
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(30)


def model_only(stack: Stack, model_id: str, sample: np.ndarray, batch: int, seconds: float = 3.0) -> float:
    """Samples/s of preprocess + forward + softmax alone, one torch thread, as one API process runs it."""
    import torch

    from app.core.artifacts.configured import open_store
    from app.core.db.engine import session_factory
    from app.core.db.tables import TrainedModel
    from app.serving import forward
    from app.serving.loading import load, servable_model

    settings = stack.settings()
    with session_factory(settings.database_url)() as session:
        servable = servable_model(session.get(TrainedModel, model_id))  # the bench's own model: no tenant to scope by here
    torch.set_num_threads(1)
    loaded = load(open_store(settings), servable)
    forward.warm_up(loaded)
    x = np.repeat(sample[None].astype(np.float32), batch, axis=0)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward.probabilities(loaded, x, None)
        done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--no-peer", action="store_true", help="skip TorchServe")
    parser.add_argument("--limit-pairs", type=int, default=2, help="rate limits off/on runs, alternated")
    parser.add_argument("--redis-limits", metavar="URL", help="also count in this Redis (async+redis://127.0.0.1:6379/0)")
    parser.add_argument("--metrics-pairs", type=int, default=2, help="Prometheus metrics off/on runs, alternated")
    parser.add_argument("--lane-runs", type=int, default=1, help="rounds of the three lanes (v1 JSON, v1 .npy, v2 binary), batching on")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("embedded", {}, Path(tmp))
        try:
            client = stack.start_service()
            key = client.headers["authorization"].split()[1]
            dataset = upload_mnist(client, args.mnist_dir)
            job = client.post("/v1/jobs", json={**LENET_JOB, "data": {"dataset": dataset["id"], "validation_fraction": 0.1}}).json()
            job = wait_for(client, job["id"], {"succeeded", "failed", "cancelled"}, timeout=1800)
            assert job["state"] == "succeeded", job
            model_id = job["model_id"]
            print(f"LeNet-5 trained on MNIST, 1 epoch: test_accuracy {job['metrics'].get('test_accuracy'):.4f}")
            started = time.perf_counter()
            batch = client.post("/v1/inference-jobs", json={"model_id": model_id, "dataset_id": dataset["id"], "split": "test"}).json()
            batch = wait_for(client, batch["id"], {"succeeded", "failed", "cancelled"}, timeout=600, resource="inference-jobs")
            print(f"batch inference job over the {batch['metrics'].get('samples', 0):.0f} test images: {batch['state']}, "
                  f"accuracy {batch['metrics'].get('accuracy', float('nan')):.4f}, {time.perf_counter() - started:.1f} s submit to done")
            stack.stop()  # the training worker and the one-process API: the load runs alone
            stack.processes.clear()

            image = read_idx(args.mnist_dir / "t10k-images-idx3-ubyte.gz")[0]
            body = Path(tmp) / "body.json"
            lane_headers = lane_bodies(Path(tmp), image)

            results: dict[str, dict] = {}
            # Every run sets both variables: a run must not inherit the one before it's store.
            limits_on = {"KILN_RATE_LIMIT_PREDICT": LIMIT_ON, "KILN_RATE_LIMIT_STORAGE_URL": "", "KILN_METRICS_ENABLED": "true"}
            limits_off = {**limits_on, "KILN_RATE_LIMIT_PREDICT": ""}
            runs = [("kiln, batching off", 1, limits_on), ("kiln, batching on", 32, limits_on)]
            lane_runs = [(f"kiln {lane}", lane) for lane in LANES] * args.lane_runs
            for i in range(args.limit_pairs):  # alternated, so drift in the machine falls on both sides
                runs += [(f"kiln, limits off #{i + 1}", 32, limits_off), (f"kiln, limits on #{i + 1}", 32, limits_on)]
                if args.redis_limits:
                    runs.append((f"kiln, limits in redis #{i + 1}", 32, {**limits_on, "KILN_RATE_LIMIT_STORAGE_URL": args.redis_limits}))
            for i in range(args.metrics_pairs):
                runs += [(f"kiln, metrics off #{i + 1}", 32, {**limits_on, "KILN_METRICS_ENABLED": "false"}),
                         (f"kiln, metrics on #{i + 1}", 32, limits_on)]
            for label, max_batch, env in runs:
                results[label] = serve_and_load(stack, key, model_id, body, args, max_batch=max_batch, env=env)
                time.sleep(2)
            lanes: dict[str, list[dict]] = {}
            for label, lane in lane_runs:  # each lane once a round, the rounds in turn: drift falls on all
                lanes.setdefault(label, []).append(serve_and_load(stack, key, model_id, body, args, max_batch=32, env=limits_on,
                                                                  lane=lane, extra=lane_headers[lane]))
                time.sleep(2)
            forward_1 = model_only(stack, model_id, image, 1)
            forward_32 = model_only(stack, model_id, image, 32)
            peer = None if args.no_peer else run_peer(body, args)
        finally:
            stack.stop()

    print(f"\nwrk: {args.connections} connections, {args.duration} s, one 28x28 sample per request; "
          f"kiln api --workers {args.api_workers}, one torch thread each")
    print(f"{'server':28s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}")
    for label, r in results.items():
        print(f"{label:28s} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['non2xx']:8d} {r['socket_errors']}")
    if peer:
        print(f"{'torchserve tuned':28s} {peer['rps']:8.0f} {peer['p50']:8.1f} {peer['p99']:8.1f} {peer['non2xx']:8d}")
    for label, rounds in lanes.items():
        for i, r in enumerate(rounds):
            print(f"{label + f' #{i + 1}':28s} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['non2xx']:8d} "
                  f"{r['cpu_us']:8.0f} us CPU/request {r['socket_errors']}")
    if peer:
        for label, rounds in lanes.items():
            print(f"{label} / torchserve tuned: " + ", ".join(f"{r['rps'] / peer['rps']:.2f}x req/s (p99 {r['p99']:.1f} vs {peer['p99']:.1f} ms)"
                                                               for r in rounds))
    on, off = results["kiln, batching on"], results["kiln, batching off"]
    print(f"\nbatching on / off: {on['rps'] / off['rps']:.2f}x requests/s")
    for i in range(args.limit_pairs):
        with_limits, without = results[f"kiln, limits on #{i + 1}"], results[f"kiln, limits off #{i + 1}"]
        print(f"rate limits on / off (pair {i + 1}, in-process counters): {with_limits['rps'] / without['rps']:.3f}x requests/s")
        if args.redis_limits:
            print(f"rate limits in redis / off (pair {i + 1}): {results[f'kiln, limits in redis #{i + 1}']['rps'] / without['rps']:.3f}x requests/s")
    for i in range(args.metrics_pairs):
        with_metrics, without = results[f"kiln, metrics on #{i + 1}"], results[f"kiln, metrics off #{i + 1}"]
        print(f"Prometheus metrics on / off (pair {i + 1}): {with_metrics['rps'] / without['rps']:.3f}x requests/s")
    if peer:
        print(f"kiln batching on / torchserve tuned: {on['rps'] / peer['rps']:.2f}x requests/s, p99 {on['p99']:.1f} vs {peer['p99']:.1f} ms")
    print(f"model alone (preprocess + forward + softmax, 1 thread): {forward_1:,.0f} samples/s at batch 1, "
          f"{forward_32:,.0f} at batch 32")


def run_peer(body: Path, args) -> dict | None:
    if not PEER.exists():
        print(f"peer not found at {PEER}; skipping TorchServe")
        return None
    done = subprocess.run([sys.executable, str(PEER), "--config", "tuned", "--body", str(body), "--duration", str(args.duration),
                           "--connections", str(args.connections)], capture_output=True, text=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("torchserve")), None)
    if done.returncode != 0 or line is None:
        print("torchserve run failed:\n" + done.stdout[-2000:] + done.stderr[-2000:])
        return None
    m = re.search(r"([\d.]+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms, non-2xx (\d+)", line)
    return {"rps": float(m.group(1)), "p50": float(m.group(2)), "p99": float(m.group(3)), "non2xx": int(m.group(4))}


if __name__ == "__main__":
    main()
