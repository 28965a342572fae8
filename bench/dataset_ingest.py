"""Dataset ingest: upload the four MNIST IDX files to a real `kiln api` process and report the
seconds and the server's peak memory against the data's raw size.

    python bench/dataset_ingest.py [--mnist-dir ../shared/datasets/mnist] [--repeats 3]

Peak memory is the API process's VmHWM (peak resident set), reset just before each upload via
/proc/PID/clear_refs, minus its resident set at that moment: what the upload itself cost.
The ingest streams (multipart parts spooled to disk, IDX decoded chunk by chunk into memory-mapped
arrays), so that cost should stay well under the uncompressed size.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DEFAULT_MNIST_DIR, MNIST_FILES  # noqa: E402

from tests.integration.conftest import Stack  # noqa: E402  (the harness the tests use)


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = [args.mnist_dir / f for f in MNIST_FILES]
    compressed = sum(p.stat().st_size for p in paths)
    raw = sum(len(gzip.open(p).read()) for p in paths)

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("embedded", {}, Path(tmp))
        try:
            stack.kiln("db", "upgrade")
            api = stack.start_api()
            client = stack.new_tenant()
            client.get("/v1/datasets")  # warm the path once
            print(f"MNIST: {compressed / 1e6:.1f} MB compressed, {raw / 1e6:.1f} MB uncompressed (4 IDX files)")
            for r in range(args.repeats):
                Path(f"/proc/{api.pid}/clear_refs").write_text("5")  # reset the peak to the current RSS
                before = rss_kib(api.pid, "VmRSS")
                start = time.perf_counter()
                files = [("file", (p.name, open(p, "rb"))) for p in paths]
                response = client.post("/v1/datasets", data={"name": f"mnist-{r}", "format": "idx"}, files=files, timeout=600)
                seconds = time.perf_counter() - start
                assert response.status_code == 201, response.text
                peak = rss_kib(api.pid, "VmHWM")
                extra = (peak - before) * 1024
                print(f"  upload {r + 1}: {seconds:5.2f} s, {raw / seconds / 1e6:6.1f} MB/s uncompressed; "
                      f"server peak +{extra / 1e6:6.1f} MB over its {before / 1024:.0f} MB resident "
                      f"= {extra / raw:.2f}x the uncompressed size (bound: 3x)")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
