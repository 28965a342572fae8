"""Samples drawn as one PNG grid: a dataset's preview, a GAN's generated samples."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png_grid(x: np.ndarray, value_max: float) -> bytes:
    """Samples (N, H, W) or (N, C, H, W) in raw units as one PNG grid, scaled up for viewing."""
    if x.ndim == 3:
        x = x[:, None]
    n, c, h, w = x.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    pad = 2
    grid = np.zeros((c, rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = x[i]
    pixels = np.clip(grid / (value_max or 1.0) * 255, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if c == 1 else pixels[:3].transpose(1, 2, 0))
    scale = max(1, 256 // max(image.size))
    image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
