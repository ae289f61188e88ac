"""Images as vectors in pixel space, computed a block at a time from the images (in memory or in an
image store), so that a search over them holds a block's vectors, not the set's.

A set's pixel vectors are float32, four times the bytes of its uint8 images, and eight times that
again with every flip and turn of a query set: for the near-copy search they are never made whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from histosynth.dihedral import N_VARIANTS, dihedral_variant
from histosynth.image_store import Images, take


def pixel_vectors(images: np.ndarray) -> np.ndarray:
    """Images as vectors scaled so that Euclidean distance is the RMS pixel difference in 0..1."""
    flat = images.reshape(len(images), -1).astype(np.float32)  # a copy: scaled in place
    flat /= np.float32(255.0 * np.sqrt(max(flat.shape[1], 1)))
    return flat


def pixel_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (float32) between uint8 pixel rows a[i] and b[i] in :func:`pixel_vectors`' units, exact:
    the squared differences are summed as integers and rounded once (float32 differences of the
    scaled vectors cost 2.5x the time and round at every pixel)."""
    difference = np.subtract(a, b, dtype=np.int16)
    squares = np.einsum("ij,ij->i", difference, difference, dtype=np.int64)
    scale = np.float32(255.0 * np.sqrt(max(a.shape[1], 1)))
    return (np.sqrt(squares) / float(scale)).astype(np.float32)


class PixelVectors:
    """The pixel vectors of dihedral variant ``variant`` (0: as they are) of ``images``, made on demand.

    Any rows give the values :func:`pixel_vectors` of the whole variant set would hold for them."""

    def __init__(self, images: Images, variant: int = 0) -> None:
        self.images, self.variant = images, variant
        self._mean: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def dim(self) -> int:
        return int(np.prod(self.images.shape[1:]))

    def rows(self, index: Any) -> np.ndarray:
        """(len(index), dim) float32 vectors of the images at ``index`` (indices or a slice)."""
        return pixel_vectors(self.pixels(index))

    def pixels(self, index: Any) -> np.ndarray:
        """(len(index), dim) uint8 pixels of the images at ``index``, in this variant."""
        images = np.ascontiguousarray(dihedral_variant(np.asarray(self.images[index]), self.variant))
        return images.reshape(len(images), -1)

    def mean(self, rows_per_block: int) -> np.ndarray:
        """The mean vector (float64, summed a block at a time); computed once (searches reuse it)."""
        if self._mean is None:
            total = np.zeros(self.dim, np.float64)
            for start in range(0, len(self), rows_per_block):
                total += self.rows(slice(start, start + rows_per_block)).sum(axis=0, dtype=np.float64)
            self._mean = total / max(len(self), 1)
        return self._mean

    def take(self, index: Any) -> "PixelVectors":
        return PixelVectors(take(self.images, index), self.variant)


def variants(images: Images) -> list[PixelVectors]:
    """The pixel vectors of all eight flips and turns of ``images`` (variant 0 first), lazily."""
    return [PixelVectors(images, k) for k in range(N_VARIANTS)]
