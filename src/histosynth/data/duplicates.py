"""Exact and near-duplicate images: candidates by perceptual hash, confirmed on the pixels.

Two images are

- **exact** duplicates when their pixels are identical (hence the same PNG bytes and MD5);
- **near** duplicates when, under the flip or 90-degree rotation that fits best, the RMS
  difference of the two images standardised per channel (mean 0, sd 1) is at most
  ``max_distance`` (``data.duplicates.near_max_distance``): a re-encoded, resampled, recoloured,
  flipped or rotated copy. A shifted or re-cropped copy is not found.

Search, in three steps so that no all-pairs pixel matrix is ever built:

1. hashes (histosynth.data.fingerprint) within HASH_MAX_BITS bits, compared a bounded block of
   pairs at a time (XOR + popcount);
2. the candidates' low-frequency fingerprints within LOW_SLACK * max_distance;
3. the pixels of what is left, read through the callers' functions (an image of the batch
   from memory, an earlier one from its written PNG), a few candidates of one image at a
   time, so the caller can pass over candidates that cannot change its answer.

Memory: the fingerprints (136 bytes per image) and one block of hash comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from histosynth.data.fingerprint import Fingerprints, low_distances

HASH_MAX_BITS = 8  # of 64: JPEG quality 50, noise of sd 3 or a 10% brightness change flip at most 8 on BloodMNIST
LOW_SLACK = 1.5  # the low-frequency distance is a bound for the grey image; colour can differ a little
PAIR_BLOCK = 1 << 20  # hash comparisons per block (8 MB of uint64)
CONFIRM_CHUNK = 16  # candidates of one image compared at once
SD_FLOOR = 1.0  # grey levels: a flat image is standardised by this instead of its ~0 spread

# The eight orientations, as applied to the earlier image of a pair: rot90 k times, after a
# left-right flip for the last four.
TRANSFORMS = ("none", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180", "flip+rot270")

Pixels = Callable[[int], np.ndarray]
Wanted = Callable[[int, int, bool], bool]


@dataclass(frozen=True)
class Match:
    """Image ``later`` of the batch duplicates ``earlier``: an indexed image (``earlier_indexed``)
    or an image before it in the batch."""

    later: int
    earlier: int
    earlier_indexed: bool
    exact: bool
    distance: float
    transform: str


def find_matches(batch: Fingerprints, batch_pixels: Pixels, index: Fingerprints, index_pixels: Pixels,
                 max_distance: float, wanted: Wanted | None = None) -> Iterator[Match]:
    """The duplicate pairs (batch image, indexed image) and (batch image, earlier batch image).

    Each batch image's candidates are compared in order (indexed images first, then the batch),
    CONFIRM_CHUNK at a time; ``wanted(later, earlier, earlier_indexed)``, asked before each
    chunk, lets the caller pass over candidates whose answer no longer matters to it, so that
    a cluster of m copies costs about m comparisons rather than m * m / 2."""
    exact_only = max_distance == 0
    n_index = len(index)
    reference_low = np.concatenate([index.low, batch.low])
    for later, column in _hash_candidates(batch.hashes, index.hashes, 0 if exact_only else HASH_MAX_BITS):
        if not exact_only:
            keep = low_distances(batch.low[later], reference_low[column]) <= LOW_SLACK * max_distance
            later, column = later[keep], column[keep]
        order = np.lexsort((column, later))
        later, column = later[order], column[order]
        starts = np.flatnonzero(np.diff(later, prepend=-1))
        for start, end in zip(starts, [*starts[1:], len(later)]):
            yield from _confirm(int(later[start]), column[start:end], n_index, batch_pixels, index_pixels,
                                max_distance, wanted)


def _hash_candidates(batch: np.ndarray, index: np.ndarray, max_bits: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs within ``max_bits`` as (batch position, column in index + batch), a block at a time:
    each batch image against the whole index and the batch images before it."""
    reference = np.concatenate([index, batch])
    step = max(1, PAIR_BLOCK // max(1, len(reference)))
    for start in range(0, len(batch), step):
        stop = min(len(batch), start + step)
        bits = np.bitwise_count(batch[start:stop, None] ^ reference[None, :len(index) + stop])
        rows, columns = np.nonzero(bits <= max_bits)
        later = rows + start
        before = columns < len(index) + later
        yield later[before], columns[before]


def _confirm(later: int, columns: np.ndarray, n_index: int, batch_pixels: Pixels, index_pixels: Pixels,
             max_distance: float, wanted: Wanted | None) -> Iterator[Match]:
    """Compare batch image ``later`` with its candidates (columns of index + batch, ascending)."""
    pixels = batch_pixels(later)
    for start in range(0, len(columns), CONFIRM_CHUNK):
        chunk = columns[start:start + CONFIRM_CHUNK]
        indexed = chunk < n_index
        earlier = np.where(indexed, chunk, chunk - n_index)
        if wanted is not None:
            keep = np.array([wanted(later, int(j), bool(k)) for j, k in zip(earlier, indexed)], dtype=bool)
            earlier, indexed = earlier[keep], indexed[keep]
        if not len(earlier):
            continue
        others = np.stack([index_pixels(int(j)) if k else batch_pixels(int(j)) for j, k in zip(earlier, indexed)])
        same = np.broadcast_to(pixels, others.shape)
        exact = np.all(same == others, axis=(1, 2, 3))
        distance, transform = pixel_distances(same, others)
        for j, k, e, d, t in zip(earlier, indexed, exact, distance, transform):
            if e or d <= max_distance:
                yield Match(later, int(j), bool(k), bool(e), 0.0 if e else round(float(d), 4),
                            TRANSFORMS[0] if e else TRANSFORMS[t])


def pixel_distances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (k, S, S, 3) stacks: the smallest RMS difference of ``a[i]`` and an orientation of
    ``b[i]``, both standardised per channel, and the index of that orientation in TRANSFORMS."""
    za, zb = _standardised(a), _standardised(b)
    distances = np.empty((len(a), len(TRANSFORMS)), np.float32)
    for t in range(len(TRANSFORMS)):
        oriented = np.rot90(zb[:, :, ::-1] if t >= 4 else zb, t % 4, axes=(1, 2))
        distances[:, t] = np.sqrt(((za - oriented) ** 2).mean(axis=(1, 2, 3)))
    best = distances.argmin(axis=1)  # the first of equal ones: "none" wins a tie
    return distances[np.arange(len(a)), best], best


def _standardised(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    x -= x.mean(axis=(1, 2), keepdims=True)
    return x / np.maximum(x.std(axis=(1, 2), keepdims=True), SD_FLOOR)
