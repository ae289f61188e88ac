"""Reproducible random draws: one independent stream per (qa.seed, class, purpose)."""

from __future__ import annotations

import zlib

import numpy as np


def class_rng(seed: int, label: int | None, purpose: str) -> np.random.Generator:
    """The same (seed, label, purpose) always gives the same stream, whatever else is drawn.

    ``label=None``: a stream for all classes together.
    """
    purpose_key = zlib.crc32(purpose.encode("utf-8"))
    return np.random.default_rng([seed, purpose_key] if label is None else [seed, label, purpose_key])


def draw(n_available: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``min(n, n_available)`` items drawn without replacement."""
    return np.sort(rng.choice(n_available, size=min(n, n_available), replace=False))
