"""An uploaded PNG or JPEG as one sample of a model's dataset: the dataset's channels and size,
in the dataset's raw units, so the model's own preprocessing then applies exactly as in training.

Pixel values 0-255 map onto the [0, 1] scale the model learned (``raw = pixel / 255 / scale``):
for MNIST (raw 0-255) that is the pixel itself, for builtin:digits (raw 0-16) pixel * 16 / 255.
Images are not inverted: MNIST-style models expect a light digit on a dark background.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.errors import InvalidInput, detail
from app.preprocessing import Preprocessing

FORMATS = {"PNG", "JPEG"}
MAX_PIXELS = 4096 * 4096  # decoding a larger image could take gigabytes; no model here needs it


def image_layout(sample_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(channels, height, width) of an image-shaped sample, or None if samples are not images."""
    if len(sample_shape) == 2:
        return 1, sample_shape[0], sample_shape[1]
    if len(sample_shape) == 3 and sample_shape[0] in (1, 3):
        return sample_shape  # type: ignore[return-value]
    return None


def image_to_sample(data: bytes, pre: Preprocessing, *, field: str = "file", index: int = 0) -> np.ndarray:
    """One image file as a float32 sample of shape ``pre.sample_shape``, or a 422 saying why not."""
    layout = image_layout(pre.sample_shape)
    loc = ["body", field, index]
    if layout is None or pre.tokens:
        raise InvalidInput(f"this model takes samples of shape {list(pre.sample_shape)}, not images: send JSON inputs",
                           [detail(loc, "the model does not take images")])
    channels, height, width = layout
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in FORMATS:
                raise InvalidInput(f"{field} is a {img.format} image; send PNG or JPEG", [detail(loc, "not PNG or JPEG")])
            if img.width * img.height > MAX_PIXELS:
                raise InvalidInput(f"{field} is {img.width}x{img.height} pixels; at most {MAX_PIXELS} are decoded",
                                   [detail(loc, "image too large")])
            mode = "L" if channels == 1 else "RGB"
            img.draft(mode, (width, height))  # JPEG: decode at reduced size when it can
            pixels = np.asarray(img.convert(mode).resize((width, height), Image.BILINEAR), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{field} is not a readable PNG or JPEG image ({exc})", [detail(loc, "not a readable image")]) from None
    raw = pixels / 255.0 / pre.scale
    if channels == 3:
        raw = raw.transpose(2, 0, 1)
    return raw.reshape(pre.sample_shape).astype(np.float32)
