"""Precision, recall, density and coverage (Naeem et al., ICML 2020) of synthetic vs real features.

With r_i the distance from real sample i to its k-th nearest other real sample, and s_j the
same among the synthetic samples (strict comparisons, as in the authors' reference code):
- precision: share of synthetic samples inside at least one real k-NN ball;
- recall:    share of real samples inside at least one synthetic k-NN ball;
- density:   mean number of real k-NN balls a synthetic sample falls in, divided by k;
- coverage:  share of real k-NN balls that hold at least one synthetic sample.
Distances are exact (float64 differences), computed in row chunks so memory stays bounded for
large sets; QA calls this thousands of times on small per-class draws, so it stays in numpy.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.spatial.distance import cdist

KEYS = ("precision", "recall", "density", "coverage")
CHUNK = 1024


def _chunks(query: np.ndarray, reference: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    for start in range(0, len(query), CHUNK):
        rows = slice(start, start + CHUNK)
        yield rows, cdist(query[rows], reference)


def _kth_neighbour_distance(x: np.ndarray, k: int) -> np.ndarray:
    out = np.empty(len(x))
    for rows, d in _chunks(x, x):
        d[np.arange(d.shape[0]), np.arange(rows.start, rows.start + d.shape[0])] = np.inf  # not its own neighbour
        out[rows] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def compute(real: np.ndarray, synthetic: np.ndarray, k: int = 5) -> dict[str, float]:
    """P/R/D/C of (N, D) ``real`` and (M, D) ``synthetic`` features; NaN when either has <= k rows."""
    if len(real) <= k or len(synthetic) <= k:
        return dict.fromkeys(KEYS, float("nan"))
    r, s = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    real_radius, synthetic_radius = _kth_neighbour_distance(r, k), _kth_neighbour_distance(s, k)
    balls_containing = np.empty(len(s))
    for rows, d in _chunks(s, r):  # synthetic rows vs real columns
        balls_containing[rows] = (d < real_radius[None, :]).sum(1)
    recalled, covered = np.empty(len(r), bool), np.empty(len(r), bool)
    for rows, d in _chunks(r, s):  # real rows vs synthetic columns
        recalled[rows] = (d < synthetic_radius[None, :]).any(1)
        covered[rows] = d.min(1) < real_radius[rows]
    return {
        "precision": float((balls_containing > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(balls_containing.mean() / k),
        "coverage": float(covered.mean()),
    }
