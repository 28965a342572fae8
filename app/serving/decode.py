"""Request bodies -> raw samples of a model, or a 422 naming what is wrong and where: Kiln's JSON
``{"inputs": [...], "lengths": [...]}`` and PNG/JPEG images, checked against the servable's card
(sample shape, token ids, sequence lengths) before anything is loaded or run.

Images are read in the dataset's raw units, so the model's own preprocessing then applies exactly
as in training: pixel values 0-255 map onto the [0, 1] scale the model learned (``raw = pixel /
255 / scale``): for MNIST (raw 0-255) that is the pixel itself, for builtin:digits (raw 0-16)
pixel * 16 / 255. Images are not inverted: MNIST-style models expect a light digit on dark.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from PIL import Image, UnidentifiedImageError

from app.core.errors import InvalidInput, detail, over_limit
from app.core.preprocessing import image_chw
from app.serving.loading import Servable

PREDICT_FIELDS = {"inputs", "lengths"}


@dataclass(frozen=True)
class Limits:
    """What one request may bring, checked before anything is decoded."""

    samples: int  # KILN_MAX_PREDICT_SAMPLES
    elements: int  # KILN_MAX_PREDICT_ELEMENTS: the values its samples decode to
    files: int  # KILN_MAX_PREDICT_FILES: images in one multipart body

    @classmethod
    def of(cls, settings) -> "Limits":
        return cls(settings.max_predict_samples, settings.max_predict_elements, settings.max_predict_files)


def check_samples(count: int, servable: Servable, limits: Limits, loc: list) -> None:
    """A request's number of samples, and the values they decode to, before any is decoded."""
    check_sample_limit(count, limits, loc)
    check_count(count, servable, limits, loc)


def check_sample_limit(count: int, limits: Limits, loc: list) -> None:
    if count > limits.samples:
        raise InvalidInput(f"too many samples: {count} > {limits.samples} (KILN_MAX_PREDICT_SAMPLES)",
                           [detail(loc, f"at most {limits.samples} samples per request")])


def check_count(count: int, servable: Servable, limits: Limits, loc: list) -> None:
    values = count * math.prod(servable.pre.sample_shape)
    if values > limits.elements:
        raise over_limit(f"the values {count} samples of shape {list(servable.pre.sample_shape)} decode to", values, limits.elements,
                         "KILN_MAX_PREDICT_ELEMENTS", loc)


def check_images(count: int, servable: Servable, limits: Limits) -> None:
    """The number of images of a multipart body, and what they would decode to, before any is decoded."""
    if count > limits.files:
        raise over_limit("the number of images", count, limits.files, "KILN_MAX_PREDICT_FILES", ["body", "file"])
    check_count(count, servable, limits, ["body", "file"])
IMAGE_FORMATS = {"PNG", "JPEG"}
MAX_PIXELS = 4096 * 4096  # decoding a larger image could take gigabytes; no model here needs it


def json_samples(body: bytes, servable: Servable, limits: Limits) -> tuple[np.ndarray, np.ndarray | None]:
    """``{"inputs": [...], "lengths": [...]?}`` as float32 samples and (sequence networks) lengths.
    orjson, not pydantic: a 32x32 sample is a thousand numbers, and this runs on every request."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", [detail(["body"], "invalid JSON")]) from None
    if not isinstance(data, dict):
        raise InvalidInput('the body must be a JSON object {"inputs": [...]}', [detail(["body"], "not an object")])
    unknown = sorted(set(data) - PREDICT_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}", [detail(["body", k], "extra fields not permitted") for k in unknown])
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("inputs must be a non-empty list of samples", [detail(["body", "inputs"], "a non-empty list")])
    lengths = data.get("lengths")
    if lengths is not None and not isinstance(lengths, list):
        raise InvalidInput("lengths must be a list of integers", [detail(["body", "lengths"], "a list")])
    x = samples(inputs, servable, limits)
    return x, sequence_lengths(lengths, x) if servable.takes_lengths else None


NPY_KINDS = "biuf"  # booleans, integers, floats: what a sample's values can be


def npy_samples(body: bytes, servable: Servable, limits: Limits) -> tuple[np.ndarray, np.ndarray | None]:
    """An ``application/x-npy`` body (``np.save`` of an (N, *sample_shape) array) as samples; its
    header is read first, so the count is checked before the data is, and nothing is unpickled."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(stream)
    except (ValueError, OSError, SyntaxError) as exc:
        raise InvalidInput(f"the body is not a .npy file (np.save): {exc}", [detail(["body"], "not a .npy file")]) from None
    if dtype.kind not in NPY_KINDS or dtype.hasobject:
        raise InvalidInput(f"the .npy array holds {dtype}, not numbers", [detail(["body"], "a numeric dtype")])
    if len(shape):
        check_sample_limit(shape[0], limits, ["body"])
    if math.prod(shape) > limits.elements:
        raise over_limit("the values of the .npy array", math.prod(shape), limits.elements, "KILN_MAX_PREDICT_ELEMENTS", ["body"])
    data = body[stream.tell():]
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise InvalidInput(f"the .npy array's header says {list(shape)} {dtype} ({math.prod(shape) * dtype.itemsize} bytes) but "
                           f"{len(data)} bytes follow it", [detail(["body"], "truncated or padded .npy data")])
    x = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    x = checked(x, servable, limits, ["body"])
    return x, sequence_lengths(None, x) if servable.takes_lengths else None


def samples(inputs: list[Any], servable: Servable, limits: Limits) -> np.ndarray:
    """The request's samples as float32 (N, *sample_shape), or a 4xx saying what is wrong."""
    sample_shape = servable.pre.sample_shape
    check_samples(len(inputs), servable, limits, ["body", "inputs"])
    try:
        x = np.asarray(inputs, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):  # OverflowError: an integer too large for any float
        for i, sample in enumerate(inputs):
            try:
                s = np.asarray(sample, dtype=np.float32)
            except (ValueError, TypeError, OverflowError):
                raise InvalidInput(f"sample {i} is not an array of numbers of shape {list(sample_shape)}",
                                   [detail(["body", "inputs", i], "not a numeric array")]) from None
            if s.shape != sample_shape:
                break
        else:
            i = 0
        raise InvalidInput(
            f"every sample must have shape {list(sample_shape)}; sample {i} does not",
            [detail(["body", "inputs", i], f"expected shape {list(sample_shape)}")],
        ) from None
    return checked(x, servable, limits, ["body", "inputs"])


def checked(x: np.ndarray, servable: Servable, limits: Limits, loc: list) -> np.ndarray:
    """An array of samples from any body (JSON, .npy, an inference-protocol tensor) as float32
    (N, *sample_shape): counted, shaped, finite and (token models) valid ids, or a 4xx naming ``loc``."""
    sample_shape = servable.pre.sample_shape
    if x.ndim == 0 or len(x) == 0:
        raise InvalidInput(f"no samples: expected an array of shape [N, {', '.join(map(str, sample_shape))}]", [detail(loc, "no samples")])
    check_samples(len(x), servable, limits, loc)  # again: a tensor's count is first known here
    if x.shape[1:] != sample_shape:
        raise InvalidInput(
            f"every sample must have shape {list(sample_shape)}; got {list(x.shape[1:])}",
            [detail(loc, f"expected samples of shape {list(sample_shape)}, got {list(x.shape[1:])}")],
        )
    x = x.astype(np.float32, copy=not x.flags.writeable)  # a view of a request's bytes is read-only; torch wants to own its copy
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])
        raise InvalidInput(f"sample {bad} contains NaN or infinity", [detail([*loc, bad], "NaN or infinity")])
    check_tokens(servable, x)
    return x


def check_tokens(servable: Servable, x: np.ndarray) -> None:
    """Token-id samples hold integers below the vocabulary size."""
    pre = servable.pre
    if pre.tokens and (not np.equal(np.mod(x, 1), 0).all() or x.min() < 0 or x.max() >= (pre.vocab_size or 0)):
        raise InvalidInput(f"token ids must be integers in 0..{(pre.vocab_size or 1) - 1}", [detail(["body", "inputs"], "token id out of range")])


def sequence_lengths(lengths: list[Any] | None, x: np.ndarray) -> np.ndarray:
    """Each sample's real length (1..T); by default the full padded length."""
    if lengths is None:
        return np.full(len(x), x.shape[1], dtype=np.int64)
    if len(lengths) != len(x):
        raise InvalidInput(f"{len(lengths)} lengths for {len(x)} samples", [detail(["body", "lengths"], "one length per sample")])
    try:
        out = np.asarray(lengths, dtype=np.int64)
    except (ValueError, TypeError):
        raise InvalidInput("lengths must be integers", [detail(["body", "lengths"], "not integers")]) from None
    if out.ndim != 1 or (len(out) and (out.min() < 1 or out.max() > x.shape[1])):
        raise InvalidInput(f"lengths must lie in 1..{x.shape[1]}", [detail(["body", "lengths"], f"each in 1..{x.shape[1]}")])
    return out


def image_sample(data: bytes, servable: Servable, *, field: str = "file", index: int = 0) -> np.ndarray:
    """One image file as a float32 sample of shape ``sample_shape``, or a 422 saying why not."""
    pre = servable.pre
    layout = image_chw(pre.sample_shape)
    loc = ["body", field, index]
    if layout is None or layout[0] not in (1, 3) or pre.tokens:
        raise InvalidInput(f"this model takes samples of shape {list(pre.sample_shape)}, not images: send JSON inputs",
                           [detail(loc, "the model does not take images")])
    channels, height, width = layout
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in IMAGE_FORMATS:
                raise InvalidInput(f"{field} is a {img.format} image; send PNG or JPEG", [detail(loc, "not PNG or JPEG")])
            if img.width * img.height > MAX_PIXELS:
                raise InvalidInput(f"{field} is {img.width}x{img.height} pixels; at most {MAX_PIXELS} are decoded",
                                   [detail(loc, "image too large")])
            mode = "L" if channels == 1 else "RGB"
            img.draft(mode, (width, height))  # JPEG: decode at reduced size when it can
            pixels = np.asarray(img.convert(mode).resize((width, height), Image.BILINEAR), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidInput(f"{field} {index} is not a readable PNG or JPEG image", [detail(loc, "not a readable image")]) from None
    raw = pixels / 255.0 / pre.scale
    if channels == 3:
        raw = raw.transpose(2, 0, 1)
    return raw.reshape(pre.sample_shape).astype(np.float32)


def top_k(value: int | None, servable: Servable) -> int | None:
    """``?top_k=``: at most the model's number of classes."""
    classes = len(servable.card.class_names)
    if value is not None and value > classes:
        raise InvalidInput(f"top_k is {value} but the model has {classes} classes", [detail(["query", "top_k"], f"at most {classes}")])
    return value
