"""A figure and its real-vs-real floor as distributions over repeated random draws.

QA computes every drawn figure ``qa.draws`` times: once between a real reference set and the
synthetic images, once between the same reference and a disjoint real set of the same size.
The synthetic figure is the mean of its draws; the floor keeps its mean, standard deviation and
both tail quantiles, from which the gates build their thresholds (histosynth.qa.gates).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def floor_keys(metric: str) -> tuple[str, str, str, str]:
    """Keys of a floor's mean, standard deviation, lower and upper quantile in a class's figures."""
    base = f"{metric}_real_floor"
    return base, f"{base}_sd", f"{base}_q_low", f"{base}_q_high"


def summarise_floor(metric: str, draws: np.ndarray, quantile: float) -> dict[str, Any]:
    """Mean, sd and the (1 - quantile, quantile) quantiles of a floor's finite draws (NaN when none)."""
    finite = np.asarray(draws, np.float64)
    finite = finite[np.isfinite(finite)]
    mean, sd, low, high = floor_keys(metric)
    if len(finite) == 0:
        return dict.fromkeys((mean, sd, low, high), float("nan")) | {f"{metric}_floor_draws": 0}
    return {
        mean: float(finite.mean()),
        sd: float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
        low: float(np.quantile(finite, 1.0 - quantile)),
        high: float(np.quantile(finite, quantile)),
        f"{metric}_floor_draws": len(finite),
    }


def mean_of_draws(draws: np.ndarray) -> float:
    finite = np.asarray(draws, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if len(finite) else float("nan")
