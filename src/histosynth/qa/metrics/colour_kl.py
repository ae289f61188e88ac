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

from histosynth.colour_histograms import (  # noqa: F401  (QA's metric API)
    CHANNELS, colour_histograms, kl_per_channel, per_image_histograms, smoothed_distribution,
)


def kl_of_counts(real_counts: np.ndarray, synthetic_counts: np.ndarray, smoothing: float) -> dict[str, float]:
    """``kl`` and ``kl_<channel>`` of two (3, bins) count arrays."""
    per_channel = kl_per_channel(real_counts, synthetic_counts, smoothing)
    return {"kl": float(per_channel.mean()), **{f"kl_{c}": float(v) for c, v in zip(CHANNELS, per_channel)}}


def compute(real: np.ndarray, synthetic: np.ndarray, bins: int = 32, smoothing: float = 1.0) -> dict[str, float]:
    """Colour-histogram KL of two (N, H, W, 3) uint8 image sets: ``kl`` and ``kl_<channel>``."""
    if len(real) == 0 or len(synthetic) == 0:
        return {"kl": float("nan"), **{f"kl_{c}": float("nan") for c in CHANNELS}}
    return kl_of_counts(colour_histograms(real, bins), colour_histograms(synthetic, bins), smoothing)
