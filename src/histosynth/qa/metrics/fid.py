"""Fréchet distance between two sets of feature vectors, with torchmetrics' FID machinery.

Features are computed once per image set (domain feature net or Inception) and handed to
torchmetrics' ``FrechetInceptionDistance`` through a pass-through "feature extractor", so
the mean/covariance accumulation (float64) and the matrix square root are torchmetrics'.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance


class _PrecomputedFeatures(nn.Module):
    """A feature extractor whose inputs already are the features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float:
    """FID of (N, D) ``real`` vs (M, D) ``synthetic`` features; NaN with fewer than 2 of either."""
    if len(real) < 2 or len(synthetic) < 2:
        return float("nan")
    metric = FrechetInceptionDistance(feature=_PrecomputedFeatures(real.shape[1]))
    metric.update(torch.as_tensor(real, dtype=torch.float64), real=True)
    metric.update(torch.as_tensor(synthetic, dtype=torch.float64), real=False)
    return float(metric.compute())


def compute(real: np.ndarray, synthetic: np.ndarray) -> dict[str, float]:
    return {"fid": frechet_distance(real, synthetic)}
