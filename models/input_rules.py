"""Input-shape rules that several families share, each with the error that names the family."""

from __future__ import annotations

from models.registry import ArchitectureError

SMALL_STEM_BELOW = 64  # "auto" picks the small-input stem for images smaller than this a side
SMALL_STEM_MIN = 8


def image_stem(name: str, stem: str, input_shape: tuple[int, ...], *, full_stem_min: int) -> bool:
    """Whether a convolutional family uses its small-input stem ("auto": below 64 pixels a side),
    once the input is known to be an image [C, H, W] big enough for the stem chosen."""
    if len(input_shape) != 3:
        raise ArchitectureError(f"{name} takes images [C, H, W], got {list(input_shape)}")
    side = min(input_shape[1:])
    small = stem == "small" or (stem == "auto" and side < SMALL_STEM_BELOW)
    smallest = SMALL_STEM_MIN if small else full_stem_min
    if side < smallest:
        raise ArchitectureError(f"{name} with the {'small' if small else 'full'} stem needs images of at least "
                                f"{smallest}x{smallest}, got {list(input_shape[1:])}")
    return small


def check_sequence_input(name: str, input_shape: tuple[int, ...], vocab_size: int | None) -> None:
    """Token ids (T,) come with a vocabulary; otherwise the input must be series (T, F)."""
    if vocab_size is None and len(input_shape) != 2:
        raise ArchitectureError(f"{name} takes token ids (T,) with a vocabulary, or series (T, F); got {list(input_shape)}")
