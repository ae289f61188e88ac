"""Precision, recall, density and coverage (Naeem et al., ICML 2020) of synthetic vs real features.

With r_i the distance from real sample i to its k-th nearest other real sample, and s_j the
same among the synthetic samples (strict comparisons, as in the authors' reference code):
- precision: share of synthetic samples inside at least one real k-NN ball;
- recall:    share of real samples inside at least one synthetic k-NN ball;
- density:   mean number of real k-NN balls a synthetic sample falls in, divided by k;
- coverage:  share of real k-NN balls that hold at least one synthetic sample.
Computed in chunks (torch.cdist), so memory stays bounded for 10k x 10k samples.
"""

from __future__ import annotations

import numpy as np
import torch

from histosynth.qa.knn import as_tensor, distance_chunks, kth_neighbour_distance

KEYS = ("precision", "recall", "density", "coverage")


def compute(real: np.ndarray, synthetic: np.ndarray, k: int = 5) -> dict[str, float]:
    """P/R/D/C of (N, D) ``real`` and (M, D) ``synthetic`` features; NaN when either has <= k rows."""
    if len(real) <= k or len(synthetic) <= k:
        return dict.fromkeys(KEYS, float("nan"))
    r, s = as_tensor(real), as_tensor(synthetic)
    real_radius = torch.as_tensor(kth_neighbour_distance(r, k))
    synthetic_radius = torch.as_tensor(kth_neighbour_distance(s, k))

    balls_containing = torch.empty(len(s), dtype=torch.float64)
    for start, d in distance_chunks(s, r):  # synthetic rows vs real columns
        balls_containing[start : start + len(d)] = (d < real_radius[None, :]).sum(1)
    recalled, covered = torch.empty(len(r), dtype=torch.bool), torch.empty(len(r), dtype=torch.bool)
    for start, d in distance_chunks(r, s):  # real rows vs synthetic columns
        recalled[start : start + len(d)] = (d < synthetic_radius[None, :]).any(1)
        covered[start : start + len(d)] = d.min(1).values < real_radius[start : start + len(d)]
    return {
        "precision": float((balls_containing > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(balls_containing.mean() / k),
        "coverage": float(covered.double().mean()),
    }
