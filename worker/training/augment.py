"""Image augmentation on whole batches of tensors (N, C, H, W), on the batch's device.

Uses torch's global generator, which every checkpoint saves, so a resumed run augments exactly
as an uninterrupted one would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(batch: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad each side by ``padding`` and crop back to the original size at a random offset per sample."""
    n, _, h, w = batch.shape
    padded = F.pad(batch, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,)).to(batch.device)
    dx = torch.randint(0, 2 * padding + 1, (n,)).to(batch.device)
    rows = (dy[:, None] + torch.arange(h, device=batch.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=batch.device)[None, :])[:, None, None, :]
    samples = torch.arange(n, device=batch.device)[:, None, None, None]
    channels = torch.arange(batch.shape[1], device=batch.device)[None, :, None, None]
    return padded[samples, channels, rows, cols]


def horizontal_flip(batch: torch.Tensor) -> torch.Tensor:
    """Flips a random half (in expectation) of the samples left-right."""
    flip = (torch.rand(batch.shape[0]) < 0.5).to(batch.device)
    return torch.where(flip[:, None, None, None], batch.flip(-1), batch)


def augment(batch: torch.Tensor, *, crop_padding: int, flip: bool) -> torch.Tensor:
    if crop_padding:
        batch = random_crop(batch, crop_padding)
    if flip:
        batch = horizontal_flip(batch)
    return batch
