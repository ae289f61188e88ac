"""The eight flips and 90-degree rotations of square images (the dihedral group D4).

Tissue has no up or left: a flipped or rotated copy of an image is still a copy of it.
"""

from __future__ import annotations

import numpy as np

N_VARIANTS = 8


def dihedral_variant(images: np.ndarray, k: int) -> np.ndarray:
    """Variant ``k`` (0..7) of (N, H, W, C) ``images``: rotated by ``k % 4`` quarter turns, transposed when k >= 4.

    Variant 0 is the images themselves.
    """
    turned = np.rot90(images, k % 4, axes=(1, 2))
    return np.swapaxes(turned, 1, 2) if k >= 4 else turned


def dihedral_variants(images: np.ndarray) -> list[np.ndarray]:
    """All eight variants of (N, H, W, C) ``images``, contiguous, variant 0 first."""
    return [np.ascontiguousarray(dihedral_variant(images, k)) for k in range(N_VARIANTS)]
