"""The forward passes of a loaded model on raw samples: preprocess, one pass under
``inference_mode``, postprocess. Shared by predict, generate, transform and batch-inference jobs,
so a sample gets the same answer whichever way it comes in."""

from __future__ import annotations

import numpy as np
import threadpoolctl
import torch

from app.core import preprocessing
from app.serving.loading import LoadedModel
from models.gan import from_tanh_range


def configure_threads(threads: int) -> None:
    """Torch's and numpy's BLAS pools both to ``threads``. numpy's OpenBLAS left at one thread per
    core spins a second core on every small matmul of preprocessing: half the machine, for nothing."""
    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)


def probabilities(loaded: LoadedModel, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Class probabilities (N, classes) of raw samples. Sequence networks read each sample to its
    length; without lengths, to the full padded length."""
    batch = torch.from_numpy(preprocessing.apply(loaded.pre, x))
    with torch.inference_mode():
        if loaded.servable.takes_lengths:
            if lengths is None:
                lengths = np.full(len(x), x.shape[1], dtype=np.int64)
            logits = loaded.net(batch, torch.from_numpy(lengths))
        else:
            logits = loaded.net(batch)
        return torch.softmax(logits, dim=1).numpy()


def generate(loaded: LoadedModel, n: int, seed: int | None) -> np.ndarray:
    """``n`` samples from a GAN's generator, in the dataset's raw units and sample shape."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.inference_mode():
        images = loaded.net.generate(n, generator=generator)
    output_range = loaded.servable.card.preprocessing["output_range"]
    low = torch.tensor(output_range["low"]).view(1, -1, 1, 1)
    high = torch.tensor(output_range["high"]).view(1, -1, 1, 1)
    raw = (from_tanh_range(images, low, high) / loaded.pre.scale).numpy()
    return raw.reshape(n, *loaded.pre.sample_shape)


def transform(loaded: LoadedModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An RBM's hidden features of each sample, and its one-step reconstruction in raw units."""
    batch = torch.from_numpy(preprocessing.apply(loaded.pre, x)).clamp(0, 1)
    with torch.inference_mode():
        hidden = loaded.net(batch)
        reconstruction = loaded.net.reconstruct(batch)
    raw = (reconstruction / loaded.pre.scale).reshape(len(x), *loaded.pre.sample_shape)
    return hidden.numpy(), raw.numpy()


def warm_up(loaded: LoadedModel) -> None:
    """One pass on a blank sample, so the first real request does not pay for lazy initialisation."""
    blank = np.zeros((1, *loaded.pre.sample_shape), dtype=np.float32)
    if loaded.servable.task == "classify":
        probabilities(loaded, blank, None)
    elif loaded.servable.task == "generate":
        with torch.inference_mode():
            loaded.net.generate(1)
    else:
        transform(loaded, blank)
