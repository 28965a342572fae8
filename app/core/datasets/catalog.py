"""What the API knows about a dataset before any worker loads it: sample shape, value range, classes.

Built-in sets ship with the service (scikit-learn's bundled data); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DatasetInfo:
    ref: str
    description: str
    kind: Literal["image", "tabular", "sequence"]
    sample_shape: tuple[int, ...]
    value_max: float  # raw values lie in [0, value_max]; training scales them to [0, 1]
    class_names: tuple[str, ...]
    num_samples: int
    task: str = "classification"
    class_counts: tuple[int, ...] = ()
    has_test_split: bool = False
    num_test_samples: int = 0
    vocab_size: int | None = None  # token-id sequences: ids lie in [0, vocab_size), 0 is padding

    @property
    def tokens(self) -> bool:
        return self.kind == "sequence" and len(self.sample_shape) == 1

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    "builtin:digits": DatasetInfo(
        ref="builtin:digits",
        description="scikit-learn's 1,797 real 8x8 handwritten digits (UCI optdigits test set), values 0-16",
        kind="image",
        sample_shape=(8, 8),
        value_max=16.0,
        class_names=tuple(str(d) for d in range(10)),
        num_samples=1797,
        class_counts=(178, 182, 177, 183, 181, 182, 181, 179, 174, 180),
    ),
}


PARITY_SAMPLES = 4000


def parity_info(length: int) -> DatasetInfo:
    return DatasetInfo(
        ref=f"builtin:parity?length={length}",
        description=f"synthetic: is the number of 1s odd? bit sequences of {max(1, length // 2)}-{length} tokens "
        "(ids 1 and 2 for bits 0 and 1, 0 pads), 4,000 samples",
        kind="sequence", sample_shape=(length,), value_max=1.0, class_names=("even", "odd"),
        num_samples=PARITY_SAMPLES, vocab_size=3,
    )


def builtin_dataset(ref: str) -> DatasetInfo | None:
    """A built-in by name; ``builtin:parity`` takes ``?length=N`` (2-256, default 10)."""
    if ref in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[ref]
    name, _, query = ref.partition("?")
    if name == "builtin:parity":
        params = dict(part.partition("=")[::2] for part in query.split("&") if part) if query else {}
        length = params.get("length", "10")
        # isdigit() alone takes "²" and "١٠", which int() refuses or reads as a number nobody wrote.
        if set(params) - {"length"} or not (length.isascii() and length.isdigit()) or not 2 <= int(length) <= 256:
            return None
        return parity_info(int(length))
    return None


@dataclass(frozen=True)
class BuiltinChoice:
    """A built-in as a client offers it: its name (a pattern where it takes parameters), one ref
    that works as written, and what it is."""

    name: str
    example: str
    description: str

    @property
    def info(self) -> DatasetInfo:
        info = builtin_dataset(self.example)
        assert info is not None, self.example  # a typo here is the catalog's bug: the API test lists every example
        return info


BUILTINS = (
    BuiltinChoice("builtin:digits", "builtin:digits", BUILTIN_DATASETS["builtin:digits"].description),
    BuiltinChoice("builtin:parity?length=N", "builtin:parity?length=8",
                  "synthetic: is the number of 1s in a bit sequence odd? N tokens at most (2-256, default 10), 4,000 samples; "
                  "for the recurrent and attention models"),
)
BUILTIN_NAMES = tuple(b.name for b in BUILTINS)
