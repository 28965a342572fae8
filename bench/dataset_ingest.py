"""Dataset ingest: uploads to a real `kiln api` process, the seconds each takes and the server's
peak memory, for MNIST and for the worst input of each format (the largest conversion each makes,
within the default limits).

    python bench/dataset_ingest.py [--mnist-dir ../shared/datasets/mnist] [--repeats 2] [--scale 1.0] [--s3]

With --s3 the artifact store is a real S3 server (moto's, started here): each converted file then
goes up in a multipart upload streamed from disk, and the bound is the same.

Peak memory is the API process's VmHWM (peak resident set), reset just before each upload via
/proc/PID/clear_refs, minus its resident set at that moment: what the upload itself cost. Every
converter streams in bounded chunks (multipart parts spooled to disk, arrays copied and cast chunk
by chunk, CSV rows flushed a bounded buffer at a time), so the cost is bounded whatever the size:
the bound stated, and checked, is +64 MB.
"""

from __future__ import annotations

import argparse
import gzip
import io
import struct
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DEFAULT_MNIST_DIR, MNIST_FILES  # noqa: E402

from tests.integration.conftest import Stack  # noqa: E402  (the harness the tests use)

BOUND_MB = 64


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def worst_inputs(folder: Path, scale: float) -> dict[str, tuple[str, list[Path], int]]:
    """Per format: (format, files, the converted size in bytes), each as costly to convert as it gets."""
    rng = np.random.default_rng(0)
    n = int(20_000 * scale)
    cases = {}
    # npz: int8 images become float32, four times their size; channels-last moved to channels-first.
    x = rng.integers(-128, 127, size=(n, 64, 64, 3), dtype=np.int8)
    path = folder / "int8-images.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("x.npy", npy(x))
        z.writestr("y.npy", npy(rng.integers(0, 10, n).astype(np.int8)))
    cases["npz: int8 images, channels last, to float32"] = ("npz", [path], x.size * 4)
    # sequences: int8 token ids become int64, eight times their size.
    tokens = rng.integers(1, 100, size=(n * 4, 512), dtype=np.int8)
    path = folder / "int8-tokens.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("x.npy", npy(tokens))
        z.writestr("y.npy", npy(rng.integers(0, 2, len(tokens))))
        z.writestr("lengths.npy", npy(np.full(len(tokens), 512)))
    cases["sequences: int8 tokens to int64"] = ("sequences", [path], tokens.size * 8)
    # csv: the widest file allowed (10,000 columns), every cell parsed.
    rows, columns = int(600 * scale), 10_000
    path = folder / "wide.csv"
    with open(path, "w") as f:
        f.write("label," + ",".join(f"f{i}" for i in range(columns)) + "\n")
        block = rng.random((rows, columns)).round(4)
        for i, row in enumerate(block):
            f.write(f"{i % 7}," + ",".join(map(str, row)) + "\n")
    cases["csv: 10,000 columns"] = ("csv", [path], rows * columns * 4)
    # idx: a gzip'd images file as large as its own ratio allows, int labels.
    images = rng.integers(0, 256, size=(n * 4, 28, 28), dtype=np.uint8)
    images[:, :8] = 0
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", *images.shape) + images.tobytes(), 1))
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", len(images)) + bytes(i % 10 for i in range(len(images)))))
    cases["idx: gzip'd images"] = ("idx", [path, labels], images.size)
    # image-zip: PNGs decoded and resized, one at a time.
    path = folder / "images.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(int(2_000 * scale)):
            png = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(png, format="PNG", compress_level=1)
            z.writestr(f"c{i % 5}/{i}.png", png.getvalue())
    cases["image-zip: 256x256 PNGs to 3x64x64"] = ("image-zip", [path], int(2_000 * scale) * 3 * 64 * 64)
    return cases


def upload(client, api_pid: int, name: str, fmt: str, paths: list[Path], options: str | None = None) -> tuple[float, float]:
    """Seconds, and the server's peak memory over its resident set before, in MB."""
    Path(f"/proc/{api_pid}/clear_refs").write_text("5")  # reset the peak to the current RSS
    before = rss_kib(api_pid, "VmRSS")
    start = time.perf_counter()
    files = [("file", (p.name, open(p, "rb"))) for p in paths]
    data = {"name": name, "format": fmt} | ({"options": options} if options else {})
    response = client.post("/v1/datasets", data=data, files=files, timeout=1800)
    seconds = time.perf_counter() - start
    assert response.status_code == 201, response.text
    client.delete(f"/v1/datasets/{response.json()['id']}")
    return seconds, (rss_kib(api_pid, "VmHWM") - before) * 1024 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="size of the worst-case inputs")
    parser.add_argument("--s3", action="store_true", help="the artifact store in an S3 server (moto's), not a folder")
    args = parser.parse_args()
    mnist = [args.mnist_dir / f for f in MNIST_FILES]
    raw = sum(len(gzip.open(p).read()) for p in mnist)

    with tempfile.TemporaryDirectory() as tmp:
        cases = {"idx: MNIST, 4 files": ("idx", mnist, raw)} | worst_inputs(Path(tmp), args.scale)
        env, moto = {}, None
        if args.s3:
            from tests.conftest import start_moto_server

            moto, server = start_moto_server()
            env = server.env(server.new_bucket())
        stack = Stack("embedded", env, Path(tmp) / "kiln")
        try:
            stack.kiln("db", "upgrade")
            api = stack.start_api()
            client = stack.new_tenant()
            client.get("/v1/datasets")  # warm the path once
            print(f"{'input':42s} {'upload MB':>9s} {'converted MB':>12s} {'seconds':>8s} {'peak +MB':>9s}  (bound +{BOUND_MB} MB)")
            worst = 0.0
            for label, (fmt, paths, converted) in cases.items():
                options = '{"size": [64, 64], "channels": 3}' if fmt == "image-zip" else None
                for r in range(args.repeats):
                    seconds, extra = upload(client, api.pid, f"{fmt}-{r}", fmt, paths, options)
                    worst = max(worst, extra)
                    size = sum(p.stat().st_size for p in paths) / 1e6
                    print(f"{label if r == 0 else '':42s} {size:9.1f} {converted / 1e6:12.1f} {seconds:8.2f} {extra:9.1f}")
            store = "an S3 server" if args.s3 else "a folder"
            print(f"\nworst peak: +{worst:.1f} MB with the store in {store}; bound +{BOUND_MB} MB: {'held' if worst <= BOUND_MB else 'BROKEN'}")
        finally:
            stack.stop()
            if moto:
                moto.terminate()


if __name__ == "__main__":
    main()
