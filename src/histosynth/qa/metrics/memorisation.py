"""Memorisation: synthetic images that sit on top of one training image.

For every synthetic and every held-out real image (val + test: never trained on), the
distances d1 and d2 to its two nearest real training images are found, in one space (pixels
or features). The gated figure is the *distance ratio* d1 / d2: a near-copy of training image
T is much closer to T than to any other training image, whatever the absolute scale.

Why a ratio and not d1 alone: a smooth (blurry) generator is close in L2 to *many* training
images at once, so its raw d1 falls below the held-out real images' 1st percentile although it
copies nothing (the demo GAN: 20% of its images), while its ratio stays near 1 like a real
image's. Noisy, blurred, shifted or brightened copies of training images all get ratios far
below any real image's (tests/test_qa_gates.py, bench/results/qa_memorisation.md). The ratio
test follows Yoon et al. 2023 and Gu et al. 2023 ("memorised if d1 < d2 / 3"), with the
threshold calibrated on held-out real images instead of fixed at 1/3, which missed half of the
degraded copies on the demo tiles.

An image counts as a near-copy when its ratio is at most the ``percentile``-th percentile of
the held-out ratios of the class of its nearest training image (a class of near-identical
tiles has lower real ratios than a varied one). An exact copy has ratio 0 and is always
flagged. The raw-distance share (d1 below the held-out percentile) is reported beside it.
"""

from __future__ import annotations

import numpy as np


def distance_ratios(nearest_two: np.ndarray) -> np.ndarray:
    """d1 / d2 per row of an (N, 2) distance array; 0 when d1 is 0 (a copy, even of a duplicated image)."""
    d1, d2 = nearest_two[:, 0].astype(np.float64), nearest_two[:, 1].astype(np.float64)
    return np.divide(d1, d2, out=np.zeros_like(d1), where=d1 > 0)


def near_copy_thresholds(heldout_values: np.ndarray, heldout_labels: np.ndarray, n_classes: int,
                         percentile: float = 1.0) -> np.ndarray:
    """(n_classes,) thresholds; a class without held-out images gets the percentile of all of them."""
    if len(heldout_values) == 0:
        return np.full(n_classes, np.nan)
    pooled = np.percentile(heldout_values, percentile)
    return np.array([np.percentile(heldout_values[heldout_labels == k], percentile)
                     if np.any(heldout_labels == k) else pooled for k in range(n_classes)])


def near_copies(values: np.ndarray, nearest_train_labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Boolean per image: at most its nearest training image's class threshold (NaN: never)."""
    return values <= thresholds[nearest_train_labels]
