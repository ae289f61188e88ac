"""Paired, class-stratified bootstrap over the real test images (and the seeds): intervals of scores and gains.

A resample draws, within each class, as many test images as the class has, with replacement,
so every class keeps its size (and a one-vs-rest AUC stays defined). It is stored as a vector
of counts, one per test image. The same resamples are applied to every arm and every seed
(paired), and each seed's figure is computed on the resampled images, each image weighted by
its count. A resample's figure for an arm is the mean of those figures over the seeds; with
``resample_seeds``, over seeds drawn with replacement (the same draw for every arm, so two
arms trained on the same data stay identical), so that the interval also covers how much
retraining with other seeds moves the figure, not only another test set. An interval is the
percentile interval of the resampled figures; a gain's interval that of the differences
between two arms on the same resamples.
"""

from __future__ import annotations

import numpy as np

from histosynth.benchmark.scores import METRICS, auc_classes

# Resamples computed at once: bounds memory to a few (chunk x test images) float64 arrays.
CHUNK_ELEMENTS = 2_000_000


def stratified_counts(labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, N) int32: how often each test image is drawn, class by class with replacement."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, len(labels)), np.int32)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        counts[:, members] = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)), size=resamples)
    return counts


def weighted_auc(scores: np.ndarray, positive: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` for ``positive`` under each row of ``counts`` (sample weights): (B,).

    The Mann-Whitney form: the weighted share of (positive, negative) pairs that the scores
    order correctly, ties counting one half; equal to scikit-learn's ``roc_auc_score`` with
    ``sample_weight`` set to a row of counts.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores, pos = scores[order], positive[order]
    weights = counts[:, order].astype(np.float64)
    new_value = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    group = np.cumsum(new_value) - 1  # tie group of each sorted image
    negatives = np.add.reduceat(weights * ~pos, np.flatnonzero(new_value), axis=1)  # (B, groups)
    below = np.cumsum(negatives, axis=1) - negatives  # negative weight strictly below each group
    pos_weights = weights * pos
    wins = (pos_weights * (below[:, group] + 0.5 * negatives[:, group])).sum(axis=1)
    return wins / (pos_weights.sum(axis=1) * (weights * ~pos).sum(axis=1))


def resampled_scores(probabilities: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric of :data:`METRICS` of each seed on every resample: name -> (seeds, B).

    ``probabilities`` is (seeds, N, K). Balanced accuracy is the mean of per-class recalls,
    the AUC the macro one-vs-rest AUC, as :func:`histosynth.benchmark.scores.scores` computes them.
    """
    n_seeds, n_images, n_classes = probabilities.shape
    chunk = max(1, CHUNK_ELEMENTS // n_images)
    out = {name: np.zeros((n_seeds, len(counts))) for name in METRICS}
    members = [labels == k for k in range(n_classes)]
    for start in range(0, len(counts), chunk):
        block = counts[start : start + chunk].astype(np.float64)
        rows = slice(start, start + len(block))
        for seed, probs in enumerate(probabilities):
            correct = (probs.argmax(axis=1) == labels).astype(np.float64)
            out["accuracy"][seed, rows] = block @ correct / n_images
            recalls = [block[:, m] @ correct[m] / m.sum() for m in members if m.any()]
            out["balanced_accuracy"][seed, rows] = np.mean(recalls, axis=0)
            aucs = [weighted_auc(probs[:, k], members[k], block) for k in auc_classes(n_classes)]
            out["auc"][seed, rows] = np.mean(aucs, axis=0)
    return out


def resampled_recalls(probabilities: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each class's recall of each seed on every resample: (seeds, K, B); NaN for a class without test images."""
    n_seeds, _, n_classes = probabilities.shape
    out = np.full((n_seeds, n_classes, len(counts)), np.nan)
    weights = counts.astype(np.float64)
    for seed, probs in enumerate(probabilities):
        correct = (probs.argmax(axis=1) == labels).astype(np.float64)
        for k in range(n_classes):
            members = labels == k
            if members.any():
                out[seed, k] = weights[:, members] @ correct[members] / members.sum()
    return out


def seed_picks(n_seeds: int, resamples: int, seed: int) -> np.ndarray:
    """(seeds, resamples): which seeds each resample averages over, drawn with replacement."""
    return np.random.default_rng([seed, 1]).integers(0, n_seeds, (n_seeds, resamples))


def mean_over_seeds(per_seed: np.ndarray, picks: np.ndarray | None) -> np.ndarray:
    """(seeds, B) figures -> (B,): the mean over all seeds, or over the seeds ``picks`` drew for each resample."""
    if picks is None:
        return per_seed.mean(axis=0)
    return per_seed[picks, np.arange(per_seed.shape[1])].mean(axis=0)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` share of ``samples``: (low, high)."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)
