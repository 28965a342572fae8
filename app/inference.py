"""The inference runtime, the one place in ``app/`` that imports torch.

Load once (weights from the artifact store, ``eval()``), keep in a byte-bounded LRU cache shared
by all requests, then preprocess -> forward under ``inference_mode`` -> postprocess.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import threadpoolctl
import torch
from safetensors.torch import load_file

import models
from app import preprocessing
from app.artifacts import MODEL_WEIGHTS, ArtifactStore
from app.db.tables import TrainedModel
from app.errors import InvalidInput, detail


@dataclass
class LoadedModel:
    net: torch.nn.Module
    pre: preprocessing.Preprocessing
    class_names: list[str]
    nbytes: int
    takes_lengths: bool = False
    task: str = "classify"
    name: str = ""
    output_range: dict[str, list[float]] | None = None  # GAN: per-channel range of the [0, 1]-scaled data it learned

    def require(self, task: str, endpoint: str) -> None:
        if self.task != task:
            use = {"classify": "predict", "generate": "generate", "reconstruct": "transform"}[self.task]
            raise InvalidInput(f"{endpoint} needs a model that does {task}; this {self.name} model does {self.task}: use /{use}",
                               [detail(["path", "model_id"], f"a {self.name} model")])


def load(store: ArtifactStore, record: TrainedModel) -> LoadedModel:
    """A finished model: weights from its safetensors file; or, for a record made from a training
    job's checkpoint (``artifact_path`` ends in ``.pt``), the network state in that checkpoint."""
    arch = models.get(record.architecture)
    params = arch.make_params(record.params)
    pre = preprocessing.Preprocessing.from_dict(record.preprocessing)
    net = arch.build(params, tuple(record.input_shape), len(record.class_names), vocab_size=pre.vocab_size)
    if record.artifact_path.endswith(".pt"):
        # weights_only: the checkpoint is a file on disk; never run pickled code from it.
        state = torch.load(store.path(record.artifact_path), map_location="cpu", weights_only=True)["model"]
    else:
        state = load_file(store.path(f"{record.artifact_path}/{MODEL_WEIGHTS}"))
    net.load_state_dict(state, strict=True)
    net.eval()
    nbytes = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    loaded = LoadedModel(net, pre, list(record.class_names), nbytes, takes_lengths=arch.input_spec(params).kind == "sequence", task=arch.task,
                         name=record.architecture, output_range=record.preprocessing.get("output_range"))
    warm_up(loaded)
    return loaded


def warm_up(loaded: LoadedModel) -> None:
    """One pass on a blank sample, so the first real request does not pay for lazy initialisation."""
    blank = np.zeros((1, *loaded.pre.sample_shape), dtype=np.float32)
    if loaded.task == "classify":
        forward_probs(loaded, blank, None)
    elif loaded.task == "generate":
        with torch.inference_mode():
            loaded.net.generate(1)
    else:
        transform(loaded, blank)


class ModelCache:
    """LRU by bytes. Concurrent first requests for one model load it once."""

    def __init__(self, store: ArtifactStore, max_bytes: int):
        self.store = store
        self.max_bytes = max_bytes
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def cached(self, model_id: str) -> LoadedModel | None:
        """The model if it is loaded, without loading it (the event loop's non-blocking path)."""
        with self._lock:
            loaded = self._models.get(model_id)
            if loaded is not None:
                self._models.move_to_end(model_id)
            return loaded

    def get(self, record: TrainedModel) -> LoadedModel:
        with self._lock:
            if record.id in self._models:
                self._models.move_to_end(record.id)
                return self._models[record.id]
            load_lock = self._loading.setdefault(record.id, threading.Lock())
        with load_lock:
            with self._lock:
                if record.id in self._models:
                    return self._models[record.id]
            loaded = load(self.store, record)
            with self._lock:
                self._models[record.id] = loaded
                self._loading.pop(record.id, None)
                self._evict()
            return loaded

    def _evict(self) -> None:
        total = sum(m.nbytes for m in self._models.values())
        while total > self.max_bytes and len(self._models) > 1:
            _, evicted = self._models.popitem(last=False)
            total -= evicted.nbytes


def samples_array(inputs: list[Any], sample_shape: tuple[int, ...], max_samples: int) -> np.ndarray:
    """The request's samples as float32 (N, *sample_shape), or a 422 saying what is wrong."""
    if len(inputs) > max_samples:
        raise InvalidInput(f"too many samples: {len(inputs)} > {max_samples}", [detail(["body", "inputs"], f"at most {max_samples} samples per request")])
    try:
        x = np.asarray(inputs, dtype=np.float32)
    except (ValueError, TypeError):
        for i, sample in enumerate(inputs):
            try:
                s = np.asarray(sample, dtype=np.float32)
            except (ValueError, TypeError):
                raise InvalidInput(f"sample {i} is not an array of numbers of shape {list(sample_shape)}", [detail(["body", "inputs", i], "not a numeric array")]) from None
            if s.shape != sample_shape:
                break
        else:
            i = 0
        raise InvalidInput(
            f"every sample must have shape {list(sample_shape)}; sample {i} does not",
            [detail(["body", "inputs", i], f"expected shape {list(sample_shape)}")],
        ) from None
    if x.shape[1:] != sample_shape:
        raise InvalidInput(
            f"every sample must have shape {list(sample_shape)}; got {list(x.shape[1:])}",
            [detail(["body", "inputs"], f"expected samples of shape {list(sample_shape)}, got {list(x.shape[1:])}")],
        )
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])
        raise InvalidInput(f"sample {bad} contains NaN or infinity", [detail(["body", "inputs", bad], "NaN or infinity")])
    return x


def lengths_array(lengths: list[Any] | None, x: np.ndarray) -> np.ndarray | None:
    """Sequence lengths for a sequence model: given per sample (1..T), or the full padded length."""
    if lengths is None:
        return np.full(len(x), x.shape[1], dtype=np.int64) if x.ndim >= 2 else None
    if len(lengths) != len(x):
        raise InvalidInput(f"{len(lengths)} lengths for {len(x)} samples", [detail(["body", "lengths"], "one length per sample")])
    try:
        out = np.asarray(lengths, dtype=np.int64)
    except (ValueError, TypeError):
        raise InvalidInput("lengths must be integers", [detail(["body", "lengths"], "not integers")]) from None
    if out.ndim != 1 or (len(out) and (out.min() < 1 or out.max() > x.shape[1])):
        raise InvalidInput(f"lengths must lie in 1..{x.shape[1]}", [detail(["body", "lengths"], f"each in 1..{x.shape[1]}")])
    return out


def check_tokens(loaded: LoadedModel, x: np.ndarray) -> None:
    if loaded.pre.tokens and (not np.equal(np.mod(x, 1), 0).all() or x.min() < 0 or x.max() >= (loaded.pre.vocab_size or 0)):
        raise InvalidInput(f"token ids must be integers in 0..{(loaded.pre.vocab_size or 1) - 1}", [detail(["body", "inputs"], "token id out of range")])


def forward_probs(loaded: LoadedModel, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Class probabilities (N, classes) of raw samples: preprocess, one forward pass, softmax."""
    batch = torch.from_numpy(preprocessing.apply(loaded.pre, x))
    with torch.inference_mode():
        if loaded.takes_lengths:
            logits = loaded.net(batch, torch.from_numpy(lengths if lengths is not None else lengths_array(None, x)))
        else:
            logits = loaded.net(batch)
        return torch.softmax(logits, dim=1).numpy()


def configure_threads(threads: int) -> None:
    """Torch's and numpy's BLAS pools both to ``threads``. numpy's OpenBLAS left at one thread per
    core spins a second core on every small matmul of preprocessing: half the machine, for nothing."""
    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)


def generate(loaded: LoadedModel, n: int, seed: int | None) -> np.ndarray:
    """``n`` samples from a GAN's generator, in the dataset's raw units and sample shape."""
    loaded.require("generate", "generate")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.inference_mode():
        images = loaded.net.generate(n, generator=generator)  # [-1, 1]
    low = torch.tensor(loaded.output_range["low"]).view(1, -1, 1, 1)
    high = torch.tensor(loaded.output_range["high"]).view(1, -1, 1, 1)
    unit = (images + 1) / 2 * (high - low) + low  # back to the [0, 1] scale the GAN learned
    raw = (unit / loaded.pre.scale).numpy()
    return raw.reshape(n, *loaded.pre.sample_shape)


def transform(loaded: LoadedModel, x: np.ndarray) -> dict[str, Any]:
    """An RBM's hidden features of each sample and its one-step reconstruction, in raw units."""
    loaded.require("reconstruct", "transform")
    batch = torch.from_numpy(preprocessing.apply(loaded.pre, x)).clamp(0, 1)
    with torch.inference_mode():
        hidden = loaded.net(batch)
        reconstruction = loaded.net.reconstruct(batch)
    raw = (reconstruction / loaded.pre.scale).reshape(len(x), *loaded.pre.sample_shape)
    return {"features": hidden.tolist(), "reconstructions": raw.tolist()}
