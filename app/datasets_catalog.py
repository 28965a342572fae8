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


def builtin_dataset(ref: str) -> DatasetInfo | None:
    return BUILTIN_DATASETS.get(ref)
