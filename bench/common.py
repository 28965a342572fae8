"""Helpers the benchmarks share: MNIST from the shared IDX files, a throwaway Kiln job in a temp dir."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DEFAULT_MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def read_idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", ndim, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist_train(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    if not (mnist_dir / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"MNIST IDX files not found in {mnist_dir}; pass --mnist-dir")
    return read_idx(mnist_dir / "train-images-idx3-ubyte.gz"), read_idx(mnist_dir / "train-labels-idx1-ubyte.gz").astype(np.int64)


class PerSampleDataset:
    """The textbook's map-style Dataset: one (sample, label) pair per index, collated by a DataLoader."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def upload_mnist(client, mnist_dir: Path) -> dict:
    """Uploads the four IDX files through the API (one multipart request); returns the dataset."""
    files = [("file", (name, open(mnist_dir / name, "rb"))) for name in MNIST_FILES]
    response = client.post("/v1/datasets", data={"name": "mnist", "format": "idx"}, files=files, timeout=600)
    assert response.status_code == 201, response.text
    return response.json()
