"""Independent random streams derived from ``gan.seed``.

Every random choice in training draws from a stream named here and reseeded from
(seed, name, epoch, ...), never from state carried over from earlier epochs. A run resumed
from a checkpoint therefore draws exactly what an uninterrupted run draws, without having to
save and restore RNG states.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, stream: str, *indices: int) -> int:
    """A 63-bit seed for ``stream`` at ``indices`` (e.g. epoch, rank), hashed by numpy's SeedSequence."""
    entropy = [seed, zlib.crc32(stream.encode("utf-8")), *indices]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))
