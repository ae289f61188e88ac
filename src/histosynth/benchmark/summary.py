"""The figures of ``reports/benchmark/metrics.json``: per arm over seeds, and the gains with intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from histosynth.benchmark.bootstrap import (
    mean_over_seeds, percentile_interval, resampled_recalls, resampled_scores, seed_picks, stratified_counts,
)
from histosynth.benchmark.scores import METRICS, scores
from histosynth.benchmark.training import ArmRuns
from histosynth.config.benchmark import BootstrapParams

# (better arm?, than arm): the gains whose confidence intervals are reported.
GAINS = (("augmented", "real_only"), ("augmented", "affine"), ("affine_synthetic", "affine"),
         ("affine_synthetic", "real_only"), ("strong", "real_only"), ("strong_synthetic", "strong"),
         ("strong_synthetic", "real_only"))
DIGITS = 6


def over_seeds(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for a single seed) and the values themselves."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": _round(float(np.mean(values))), "std": _round(std), "values": [_round(v) for v in values]}


def seed_scores(runs: ArmRuns, labels: np.ndarray) -> dict[str, list[float]]:
    """Each metric's value per seed for one training set."""
    per_seed = [scores(labels, p) for p in runs.probabilities]
    return {name: [s[name] for s in per_seed] for name in METRICS}


def summarise(arms: dict[str, ArmRuns], labels: np.ndarray, seeds: Sequence[int], bootstrap: BootstrapParams,
              classifier: str, class_names: Sequence[str]) -> dict[str, Any]:
    """metrics.json: per arm each metric's mean, std and per-seed values with its bootstrap interval,
    each class's recall (mean over seeds, interval), the number of training images, and the gains of
    :data:`GAINS` with their intervals."""
    counts = stratified_counts(labels, bootstrap.resamples, bootstrap.seed)
    picks = seed_picks(len(seeds), bootstrap.resamples, bootstrap.seed) if bootstrap.resample_seeds else None
    resampled = {arm: {name: mean_over_seeds(per_seed, picks)
                       for name, per_seed in resampled_scores(runs.probabilities, labels, counts).items()}
                 for arm, runs in arms.items()}
    values = {arm: seed_scores(runs, labels) for arm, runs in arms.items()}
    summary: dict[str, Any] = {}
    for arm, runs in arms.items():
        figures: dict[str, Any] = {}
        for name in METRICS:
            low, high = percentile_interval(resampled[arm][name], bootstrap.confidence)
            figures[name] = {**over_seeds(values[arm][name]), "ci_low": _round(low), "ci_high": _round(high)}
        recalls = recall_figures(runs.probabilities, labels, counts, picks, bootstrap.confidence)
        summary[arm] = {**figures, "recall": dict(zip(class_names, recalls)), "n_train": runs.n_train}
    summary["gains"] = {}
    for better, than in GAINS:
        if better not in arms or than not in arms:
            continue
        gains = {}
        for name in METRICS:
            low, high = percentile_interval(resampled[better][name] - resampled[than][name], bootstrap.confidence)
            mean = float(np.mean(values[better][name]) - np.mean(values[than][name]))
            gains[name] = {"mean": _round(mean), "ci_low": _round(low), "ci_high": _round(high)}
        summary["gains"][f"{better}_vs_{than}"] = gains
    method = "percentile; test images paired and class-stratified"
    if bootstrap.resample_seeds:
        method += "; seeds drawn with replacement, the same draw for every arm"
    summary.update(seeds=list(seeds), n_test=len(labels), classifier=classifier,
                   bootstrap={**bootstrap.model_dump(), "method": method})
    return summary


def recall_figures(probabilities: np.ndarray, labels: np.ndarray, counts: np.ndarray, picks: np.ndarray | None,
                   confidence: float) -> list[dict[str, float | None]]:
    """Per class: recall's mean over the seeds and its bootstrap interval (None for a class without test images)."""
    resampled = resampled_recalls(probabilities, labels, counts)  # (seeds, K, B)
    figures = []
    for k in range(resampled.shape[1]):
        members = labels == k
        if not members.any():
            figures.append({"mean": None, "ci_low": None, "ci_high": None})
            continue
        mean = float(np.mean([(p[members].argmax(axis=1) == k).mean() for p in probabilities]))
        low, high = percentile_interval(mean_over_seeds(resampled[:, k], picks), confidence)
        figures.append({"mean": _round(mean), "ci_low": _round(low), "ci_high": _round(high)})
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS)
