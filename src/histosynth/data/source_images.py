"""What every data source hands to ingest: class names and, per split, labelled images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SplitImages:
    """The images of one split, decoded on demand so a big source need not sit in memory twice."""

    labels: np.ndarray  # (N,) int64, 0..K-1
    ids: Sequence[str]  # N file-name-safe ids, unique within the source and stable across runs
    origins: Sequence[str]  # N human-readable "where from" (file, region, array index)
    image: Callable[[int], np.ndarray]  # index -> (S, S, 3) uint8 RGB at data.image_size
    # N group names (patient, slide, original image: never in two splits); None = each image its own
    groups: Sequence[str] | None = None
    # Called once, before any image is asked for, with the (ascending) indices that will be: a source
    # that must decode a split to reach its images decodes those alone. None: every index is available.
    select: Callable[[np.ndarray], None] | None = None

    def __post_init__(self) -> None:
        if not len(self.labels) == len(self.ids) == len(self.origins):
            raise ValueError("labels, ids and origins must have one entry per image")
        if self.groups is not None and len(self.groups) != len(self.labels):
            raise ValueError("groups must have one entry per image")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SourceImages:
    """A data source: ``read_split(name)`` is called once per split, in train/val/test order."""

    class_names: tuple[str, ...]
    read_split: Callable[[str], SplitImages]
