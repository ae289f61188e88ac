"""Per-channel colour histograms of uint8 RGB images and the KL divergence between two of them.

The definition QA's colour gate uses (histosynth.qa.metrics.colour_kl) and training's checkpoint
choice (histosynth.generators.training.selection) shares; numpy only, so that a stage importing it
does not depend on the rest of QA.

- For each RGB channel, count all pixel values of a set in ``bins`` equal-width bins over 0..255
  (bin = value * bins // 256).
- Smooth: add ``smoothing`` to every bin's count, then normalise to a distribution.
- Per channel, KL(P_real || Q_synthetic) = sum_b P(b) * ln(P(b) / Q(b)), in nats.
"""

from __future__ import annotations

import numpy as np

CHANNELS = ("red", "green", "blue")


def colour_histograms(images: np.ndarray, bins: int) -> np.ndarray:
    """(3, bins) pixel counts per channel of (N, H, W, 3) uint8 ``images``."""
    per_value = np.stack([np.bincount(images[..., c].ravel(), minlength=256) for c in range(3)])
    bin_of_value = np.arange(256) * bins // 256
    return np.stack([np.bincount(bin_of_value, weights=h, minlength=bins) for h in per_value])


def per_image_histograms(images: np.ndarray, bins: int) -> np.ndarray:
    """(N, 3, bins) pixel counts per image and channel of (N, H, W, 3) uint8 ``images``.

    Summing rows gives :func:`colour_histograms` of any subset, so repeated draws cost no rescan.
    """
    n = len(images)
    bin_of_value = (np.arange(256) * bins // 256).astype(np.int64)
    cell = (np.arange(n)[:, None, None, None] * 3 + np.arange(3)) * bins + bin_of_value[images]
    return np.bincount(cell.ravel(), minlength=n * 3 * bins).reshape(n, 3, bins)


def smoothed_distribution(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """Counts + ``smoothing`` per bin, normalised along the last axis."""
    smoothed = counts.astype(np.float64) + smoothing
    return smoothed / smoothed.sum(axis=-1, keepdims=True)


def kl_per_channel(real_counts: np.ndarray, synthetic_counts: np.ndarray, smoothing: float) -> np.ndarray:
    """KL(real || synthetic) per channel of two (..., 3, bins) count arrays."""
    p = smoothed_distribution(real_counts, smoothing)
    q = smoothed_distribution(synthetic_counts, smoothing)
    return np.sum(p * np.log(p / q), axis=-1)
