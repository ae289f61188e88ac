"""KL divergence of colour histograms, real vs synthetic (the thesis' per-class colour check).

Definition (the thesis does not state bins, channels or direction; these are ours):
- For each RGB channel, count all pixel values of all images of a set in ``bins`` equal-width
  bins over 0..255 (bin = value * bins // 256).
- Smooth: add ``smoothing`` to every bin's count, then normalise to a distribution.
- Per channel, KL(P_real || Q_synthetic) = sum_b P(b) * ln(P(b) / Q(b)), in nats. This
  direction weighs colours that real tissue has and the synthetic images lack (a missing
  stain, a dropped mode) most heavily.
- ``kl`` is the mean of the three channel values (per-channel values are returned too).
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


def kl_of_counts(real_counts: np.ndarray, synthetic_counts: np.ndarray, smoothing: float) -> dict[str, float]:
    """``kl`` and ``kl_<channel>`` of two (3, bins) count arrays."""
    per_channel = kl_per_channel(real_counts, synthetic_counts, smoothing)
    return {"kl": float(per_channel.mean()), **{f"kl_{c}": float(v) for c, v in zip(CHANNELS, per_channel)}}


def smoothed_distribution(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """Counts + ``smoothing`` per bin, normalised along the last axis."""
    smoothed = counts.astype(np.float64) + smoothing
    return smoothed / smoothed.sum(axis=-1, keepdims=True)


def kl_per_channel(real_counts: np.ndarray, synthetic_counts: np.ndarray, smoothing: float) -> np.ndarray:
    p = smoothed_distribution(real_counts, smoothing)
    q = smoothed_distribution(synthetic_counts, smoothing)
    return np.sum(p * np.log(p / q), axis=-1)


def compute(real: np.ndarray, synthetic: np.ndarray, bins: int = 32, smoothing: float = 1.0) -> dict[str, float]:
    """Colour-histogram KL of two (N, H, W, 3) uint8 image sets: ``kl`` and ``kl_<channel>``."""
    if len(real) == 0 or len(synthetic) == 0:
        return {"kl": float("nan"), **{f"kl_{c}": float("nan") for c in CHANNELS}}
    return kl_of_counts(colour_histograms(real, bins), colour_histograms(synthetic, bins), smoothing)
