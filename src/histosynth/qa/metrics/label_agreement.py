"""Label consistency: does a classifier trained on real images recognise the class asked for?

A conditional GAN can mix its class regions ("asked for 0, got 7"); the share of a class's
synthetic images that the real-trained feature net assigns to that class measures it.
"""

from __future__ import annotations

import numpy as np


def compute(predictions: np.ndarray, label: int) -> dict[str, float]:
    if len(predictions) == 0:
        return {"label_agreement": float("nan")}
    return {"label_agreement": float(np.mean(predictions == label))}
