"""A ZIP with one folder per class of PNG or JPEG files, decoded with Pillow, converted to the
stated channel count and resized to the stated size. Stored as (N, C, H, W) uint8."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.core.artifacts import layout
from app.core.datasets.ingest.common import ArrayOut, Converted, IngestError, IngestLimits, Split, Upload
from app.core.datasets.ingest.zipsafe import open_zip

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_FORMATS = {"PNG", "JPEG"}


def _size_option(options: dict[str, Any]) -> tuple[int, int]:
    size = options.get("size", [32, 32])
    if isinstance(size, int):
        size = [size, size]
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int and 1 <= v <= 1024 for v in size)):
        raise IngestError("option size must be [height, width] with each in 1..1024")
    return int(size[0]), int(size[1])


def convert(uploads: list[Upload], options: dict[str, Any], out_dir: Path, limits: IngestLimits) -> Converted:
    if len(uploads) != 1:
        raise IngestError(f"the image-zip format takes one ZIP file, got {len(uploads)}")
    upload = uploads[0]
    name = upload.filename
    height, width = _size_option(options)
    channels = options.get("channels", 3)
    if type(channels) is not int or channels not in (1, 3):  # 1.0 and True compare equal to 1
        raise IngestError("option channels must be 1 (grayscale) or 3 (RGB)")
    archive = open_zip(upload.file, name, limits)
    entries = [e for e in archive.infolist() if not e.is_dir() and not PurePosixPath(e.filename).name.startswith(".")
               and "__MACOSX" not in e.filename]
    paths = [PurePosixPath(e.filename) for e in entries]
    # Tolerate one enclosing folder (zip -r data.zip data/ gives data/<class>/<file>).
    roots = {p.parts[0] for p in paths if len(p.parts) > 2}
    strip = 1 if len(roots) == 1 and all(len(p.parts) == 3 for p in paths) else 0
    samples: list[tuple[str, Any]] = []
    for entry, path in zip(entries, paths):
        parts = path.parts[strip:]
        if len(parts) != 2:
            raise IngestError(f"entry {entry.filename!r} is not in a class folder (expected <class>/<image>)", file=name)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise IngestError(f"entry {entry.filename!r} is not a PNG or JPEG file", file=name)
        samples.append((parts[0], entry))
    if not samples:
        raise IngestError("no images found (expected one folder per class of PNG/JPEG files)", file=name)
    class_names = sorted({c for c, _ in samples})
    index = {c: i for i, c in enumerate(class_names)}
    mode = "L" if channels == 1 else "RGB"
    x_path, y_path = out_dir / layout.dataset_array("train", "x"), out_dir / layout.dataset_array("train", "y")
    out = ArrayOut(x_path, np.uint8, (len(samples), channels, height, width), limits, file=name)
    labels = np.empty(len(samples), dtype=np.int64)
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    for i, (cls, entry) in enumerate(samples):
        try:
            with archive.open(entry) as f, Image.open(f) as img:
                found = img.format
                if found in IMAGE_FORMATS:  # by content, whatever the name says
                    img.draft(mode, (width, height))  # JPEG: decode at reduced size when it can
                    pixels = np.asarray(img.convert(mode).resize((width, height), Image.BILINEAR), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise IngestError(f"entry {entry.filename!r} is not a readable image (PNG or JPEG)", file=name) from None
        if found not in IMAGE_FORMATS:
            raise IngestError(f"entry {entry.filename!r} is a {found} image; only PNG and JPEG are taken", file=name)
        out.write(pixels.reshape(1, height, width, channels).transpose(0, 3, 1, 2))
        labels[i] = index[cls]
    out.close()
    np.save(y_path, labels)
    return Converted(kind="image", train=Split(x_path, y_path), class_names=class_names,
                     value_max=255.0, extra={"resized_to": [height, width], "channels": channels})
