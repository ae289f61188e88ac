"""Duplicates: images with identical pixels, also after a flip or a quarter turn.

Each image is hashed as the smallest MD5 of the pixel data of its eight dihedral variants, so
an image and its mirror image hash alike, however they were encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from histosynth.dihedral import dihedral_variants
from histosynth.images import md5_bytes


def pixel_md5s(images: np.ndarray) -> list[str]:
    """MD5 of each image's pixels, as stored."""
    return [md5_bytes(np.ascontiguousarray(image).tobytes()) for image in images]


def orientation_free_md5s(images: np.ndarray) -> list[str]:
    """Per image, the smallest pixel MD5 among its eight flips and rotations."""
    if len(images) == 0:
        return []
    return [min(hashes) for hashes in zip(*(pixel_md5s(v) for v in dihedral_variants(images)))]


def compute(hashes: Sequence[str]) -> dict[str, float]:
    """``duplicates``: images beyond the first of each identical group; ``duplicate_share``: per image."""
    n_duplicates = len(hashes) - len(set(hashes))
    return {"duplicates": n_duplicates,
            "duplicate_share": n_duplicates / len(hashes) if hashes else float("nan")}
