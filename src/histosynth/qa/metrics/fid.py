"""Fréchet distance between two sets of feature vectors (the "F" of FID).

FID = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)), with means and covariances (N - 1
normalised) in float64. The trace of the matrix square root is the sum of the square roots of
the eigenvalues of S_1 S_2 (real and non-negative for covariance matrices; rounding noise is
clipped), the form torchmetrics and pytorch-fid use too; it costs one small eigen-decomposition,
which matters because QA computes thousands of FIDs for its floors.
"""

from __future__ import annotations

import numpy as np


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float:
    """FID of (N, D) ``real`` vs (M, D) ``synthetic`` features; NaN with fewer than 2 of either."""
    if len(real) < 2 or len(synthetic) < 2:
        return float("nan")
    x, y = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    difference = x.mean(axis=0) - y.mean(axis=0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    eigenvalues = np.linalg.eigvals(cov_x @ cov_y)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0.0, None)).sum()
    return float(difference @ difference + np.trace(cov_x) + np.trace(cov_y) - 2.0 * trace_sqrt)


def compute(real: np.ndarray, synthetic: np.ndarray) -> dict[str, float]:
    return {"fid": frechet_distance(real, synthetic)}
