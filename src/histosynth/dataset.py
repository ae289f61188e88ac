"""Labelled image sets in memory, loaded from a manifest folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from histosynth.images import read_png_rgb
from histosynth.manifest import class_names_of, read_manifest

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def of_class(self, label: int) -> np.ndarray:
        return self.images[self.labels == label]


def manifest_rows(folder: Path, split: str | None = None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The rows of ``folder``'s manifest (optionally one split), in order, and the class names of all of it."""
    df = read_manifest(folder)
    names = tuple(class_names_of(df))
    return (df if split is None else df[df["split"] == split]), names


def load_image_set(folder: Path | str, split: str | None = None) -> ImageSet:
    """Load every image listed in ``folder``'s manifest (optionally one split) into memory."""
    folder = Path(folder)
    df, names = manifest_rows(folder, split)
    images = [read_png_rgb(folder / p) for p in df["path"]]
    stacked = np.stack(images) if images else np.zeros((0, 0, 0, 3), np.uint8)
    return ImageSet(stacked, df["label"].to_numpy(np.int64), names)
