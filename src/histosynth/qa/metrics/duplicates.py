"""Exact duplicates: images with identical pixels (MD5 of the decoded pixel data).

Hashing pixels rather than files finds the same image however it was encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from histosynth.images import md5_bytes


def pixel_md5s(images: np.ndarray) -> list[str]:
    return [md5_bytes(np.ascontiguousarray(image).tobytes()) for image in images]


def compute(hashes: Sequence[str]) -> dict[str, float]:
    """``duplicates``: images beyond the first of each identical group; ``duplicate_share``: per image."""
    n_duplicates = len(hashes) - len(set(hashes))
    return {"duplicates": n_duplicates,
            "duplicate_share": n_duplicates / len(hashes) if hashes else float("nan")}
