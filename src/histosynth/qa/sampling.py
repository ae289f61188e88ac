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


def disjoint_halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sorted index sets of ``n // 2`` items each (one item is left out when n is odd)."""
    order = rng.permutation(n)
    half = n // 2
    return np.sort(order[:half]), np.sort(order[half : 2 * half])


def stratified_halves(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """:func:`disjoint_halves` within each label, concatenated (indices into ``labels``)."""
    parts = [(members[a], members[b]) for members in (np.flatnonzero(labels == c) for c in np.unique(labels))
             for a, b in [disjoint_halves(len(members), rng)]]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.sort(np.concatenate([a for a, _ in parts])), np.sort(np.concatenate([b for _, b in parts]))
