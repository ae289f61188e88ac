"""Memorisation: synthetic images nearer to a training image than held-out real images get.

For every synthetic image and every held-out real image (val + test: never trained on),
the distance to its nearest real training image is found, in one space (pixels or
features). A synthetic image is a *near-copy* when that distance is at most the
``percentile``-th percentile of the held-out distances of the class of that nearest
training image. Calibrating by the neighbour's class keeps a smooth class (small distances
everywhere) from flagging images of a textured class and vice versa; an exact copy is always
flagged, whatever its label. A generator that reproduces its training images leaks them
(patients' data).
"""

from __future__ import annotations

import numpy as np


def near_copy_thresholds(heldout_distances: np.ndarray, heldout_labels: np.ndarray, n_classes: int,
                         percentile: float = 1.0) -> np.ndarray:
    """(n_classes,) thresholds; a class without held-out images gets the percentile of all of them."""
    if len(heldout_distances) == 0:
        return np.full(n_classes, np.nan)
    pooled = np.percentile(heldout_distances, percentile)
    return np.array([np.percentile(heldout_distances[heldout_labels == k], percentile)
                     if np.any(heldout_labels == k) else pooled for k in range(n_classes)])


def near_copies(distances: np.ndarray, nearest_train_labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Boolean per image: at most its nearest training image's class threshold away (NaN: never)."""
    return distances <= thresholds[nearest_train_labels]
