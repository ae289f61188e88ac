"""Perceptual fingerprints of images that flips and 90-degree rotations do not change.

Both parts come from the lowest spatial frequencies of the grey image (its 2-D DCT-II), on
which the eight flips and rotations act exactly: a left-right flip changes the sign of the
coefficients with an odd horizontal frequency, an up-down flip those with an odd vertical one,
a transpose swaps the two frequencies.

- ``hash``: 64 bits, one per unordered frequency pair {(u, v), (v, u)}: is |C[u,v]| + |C[v,u]|
  above the median of the 64 figures? The same for all eight orientations, so a flipped or
  rotated copy has the same hash, and a re-encoded or slightly changed copy one a few bits away.
  It only picks candidates: on tiny cytology images distinct cells are often 6-10 bits apart.
- ``low``: the 8 x 8 lowest coefficients of the image standardised to mean 0 and sd 1 (DC left
  out), in float16. By Parseval's theorem, the distance between two of them (under the best of
  the eight orientations) is at most the RMS difference of the standardised grey images, so
  a cheap comparison of ``low`` discards most candidates before any pixel is read.

Memory: 8 + 128 bytes per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

HASH_FREQUENCIES = 11  # 66 unordered pairs in the 11 x 11 block: the 64 lowest after the DC make the hash
LOW = 8
GREY = (0.299, 0.587, 0.114)
BLOCK_PIXELS = 1 << 19  # pixels per batch of images fingerprinted at once: about 10 MB of temporaries


@dataclass(frozen=True)
class Fingerprints:
    hashes: np.ndarray  # (n,) uint64
    low: np.ndarray  # (n, LOW, LOW) float16

    def __len__(self) -> int:
        return len(self.hashes)

    def take(self, indices: Sequence[int] | np.ndarray) -> "Fingerprints":
        indices = np.asarray(indices, dtype=np.int64)
        return Fingerprints(self.hashes[indices], self.low[indices])

    @staticmethod
    def empty() -> "Fingerprints":
        return Fingerprints(np.zeros(0, np.uint64), np.zeros((0, LOW, LOW), np.float16))

    @staticmethod
    def concat(parts: Sequence["Fingerprints"]) -> "Fingerprints":
        return Fingerprints(np.concatenate([p.hashes for p in parts]), np.concatenate([p.low for p in parts]))


@lru_cache(maxsize=8)
def _dct_rows(size: int) -> np.ndarray:
    """The first HASH_FREQUENCIES rows of the orthonormal DCT-II matrix of ``size`` points."""
    n = np.arange(size)
    rows = np.sqrt(2.0 / size) * np.cos(np.pi * (n[None, :] + 0.5) * np.arange(HASH_FREQUENCIES)[:, None] / size)
    rows[0] /= np.sqrt(2.0)
    return rows.astype(np.float32)


@lru_cache(maxsize=1)
def _hash_pairs() -> tuple[np.ndarray, np.ndarray]:
    k = HASH_FREQUENCIES
    pairs = sorted(((u, v) for u in range(k) for v in range(u, k)), key=lambda p: (p[0] + p[1], p[0]))[1:65]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def fingerprint(images: np.ndarray) -> Fingerprints:
    """Fingerprints of a stack of (n, S, S, 3) uint8 images."""
    size = images.shape[1]
    rows = _dct_rows(size)
    grey = sum(np.float32(w) * images[..., c] for c, w in enumerate(GREY))
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    sd = np.sqrt((grey ** 2).mean(axis=(1, 2)))
    coeffs = np.einsum("ki,nij,lj->nkl", rows, grey, rows, optimize=True).astype(np.float64)
    u, v = _hash_pairs()
    figures = np.abs(coeffs[:, u, v]) + np.abs(coeffs[:, v, u])
    bits = figures > np.median(figures, axis=1, keepdims=True)
    hashes = np.ascontiguousarray(np.packbits(bits, axis=1)).view(">u8")[:, 0].astype(np.uint64)
    low = coeffs[:, :LOW, :LOW] / (np.maximum(sd, 1.0) * size)[:, None, None]
    return Fingerprints(hashes, low.astype(np.float16))


def fingerprint_all(n: int, image: Callable[[int], np.ndarray], size: int) -> Fingerprints:
    """Fingerprints of ``image(0) .. image(n-1)``, a bounded batch at a time."""
    if n == 0:
        return Fingerprints.empty()
    step = max(1, BLOCK_PIXELS // (size * size))
    return Fingerprints.concat([fingerprint(np.stack([image(i) for i in range(start, min(n, start + step))]))
                                for start in range(0, n, step)])


def low_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between ``a[i]`` and ``b[i]`` (k, LOW, LOW) under the best of the eight orientations."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    sign = (-1.0) ** np.arange(LOW, dtype=np.float32)
    best = np.full(len(a), np.inf, np.float32)
    for candidate in (b, np.swapaxes(b, 1, 2)):
        for rows in (1.0, sign[:, None]):
            for cols in (1.0, sign[None, :]):
                d = np.sqrt(((a - candidate * rows * cols) ** 2).sum(axis=(1, 2)))
                best = np.minimum(best, d)
    return best
