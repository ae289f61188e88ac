"""Which originals a class keeps and which original each augmented image is made from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassPlan:
    kept: np.ndarray  # indices of the originals copied as they are, ascending
    parents: np.ndarray  # for each augmented image, in output order: the index of its original


def plan_class(n_originals: int, per_class: int, rng: np.random.Generator) -> ClassPlan:
    """Fill a class up to ``per_class`` images.

    All originals are kept when there are at most ``per_class`` of them, and the rest are
    augmented images whose parents run through seeded shuffles of the originals, so every
    original gets the same number of children give or take one. With more originals than
    ``per_class``, a seeded subset of ``per_class`` originals is kept and nothing is augmented.
    """
    if n_originals < 1:
        raise ValueError("a class needs at least one original")
    if n_originals >= per_class:
        kept = np.sort(rng.choice(n_originals, size=per_class, replace=False))
        return ClassPlan(kept, np.empty(0, dtype=np.int64))
    n_augmented = per_class - n_originals
    rounds = -(-n_augmented // n_originals)
    parents = np.concatenate([rng.permutation(n_originals) for _ in range(rounds)])[:n_augmented]
    return ClassPlan(np.arange(n_originals), parents)
