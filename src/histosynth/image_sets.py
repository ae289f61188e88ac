"""Labelled image sets whose images stay on disk: decoded once into an image store
(histosynth.image_store) and read a batch at a time.

An :class:`~histosynth.dataset.ImageSet` whose ``images`` are :class:`~histosynth.image_store.StoredImages`
works wherever the library reads images by slices, index arrays or :func:`~histosynth.image_store.batches`;
its pixels are those :func:`~histosynth.dataset.load_image_set` would hold in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from histosynth.dataset import ImageSet, manifest_rows
from histosynth.image_store import StoredImages, concat, decode_into_store, take
from histosynth.images import read_png_rgb


def open_image_set(folder: Path | str, split: str | None = None) -> ImageSet:
    """The images of ``folder``'s manifest (optionally one split), in manifest order, stored."""
    folder = Path(folder)
    df, names = manifest_rows(folder, split)
    store = decode_into_store([folder / p for p in df["path"]], read_png_rgb, desc=f"reading {folder.name}")
    return ImageSet(StoredImages.of(store, (0, 0, 3)), df["label"].to_numpy(np.int64), names)


def subset(images: ImageSet, index: Any) -> ImageSet:
    """The images at ``index`` (indices or a mask); stored images stay stored, arrays are copied as before."""
    return ImageSet(take(images.images, index), images.labels[index], images.class_names)


def concat_sets(*sets: ImageSet) -> ImageSet:
    """The images of ``sets`` one after the other (all with the same classes and image size)."""
    return ImageSet(concat([s.images for s in sets]), np.concatenate([s.labels for s in sets]), sets[0].class_names)
