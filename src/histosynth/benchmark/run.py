"""The `benchmark` stage: do the synthetic images make a classifier better?

The arms of ``benchmark.arms`` (see :mod:`histosynth.benchmark.arms`) are trained with the same classifier, recipe,
number of optimisation steps and seeds, differing only in their training images; model
selection on the real val split, every figure on the real test split. Optionally the augmented
arm is trained again with fewer synthetic images per class (``benchmark.sweep``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histosynth.benchmark.arms import BenchmarkData, load_benchmark_data
from histosynth.benchmark.outputs import write_outputs
from histosynth.benchmark.scores import METRICS
from histosynth.benchmark.summary import seed_scores, summarise
from histosynth.benchmark.training import ArmRuns, run_all
from histosynth.classifier.train import Schedule
from histosynth.config.augment import AugmentParams
from histosynth.config.benchmark import BenchmarkParams
from histosynth.output_policy import check_outputs

log = logging.getLogger(__name__)


def run_benchmark(params: BenchmarkParams, augment: AugmentParams, package_dir: Path | str,
                  augmented_dir: Path | str, out_dir: Path | str) -> dict[str, Any]:
    """Train and evaluate every arm (and sweep point), write ``out_dir``; return metrics.json's content.

    With ``params.threads`` other than 1 the trainings run in spawned worker processes: a script
    calling this must do so under ``if __name__ == "__main__":``, as the stage script and CLI do.
    """
    check_outputs({"report folder": out_dir}, {"package": package_dir, "augmented images": augmented_dir})
    data = load_benchmark_data(package_dir, augmented_dir, augment)
    return benchmark(params, data, out_dir)


def benchmark(params: BenchmarkParams, data: BenchmarkData, out_dir: Path | str) -> dict[str, Any]:
    """:func:`run_benchmark` on data already in memory."""
    arms, n_train = data.arms(params), data.n_train()
    points, extra = sweep_training_sets(data, params)
    n_train |= {name: len(data.real_train) + n * len(data.class_names) for n, name in points.items() if name in extra}
    log.info("arms (training images): %s; real val %d, real test %d",
             ", ".join(f"{arm} {n_train[arm]}" for arm in arms), len(data.val), len(data.test))
    runs = run_all({**arms, **extra}, n_train, params, data.val, data.test.images)
    labels = data.test.labels
    metrics = summarise({arm: runs[arm] for arm in arms}, labels, params.seeds, params.bootstrap, params.classifier,
                        data.class_names)
    sweep = sweep_table({n: runs[name] for n, name in points.items() if name in runs}, labels)
    write_outputs(out_dir, metrics, {arm: runs[arm] for arm in arms}, labels, data.class_names, params.seeds, sweep)
    for arm in arms:
        accuracy, auc = metrics[arm]["accuracy"], metrics[arm]["auc"]
        log.info("%s: accuracy %.3f (%.3f-%.3f), macro AUC %.3f", arm, accuracy["mean"], accuracy["ci_low"],
                 accuracy["ci_high"], auc["mean"])
    return metrics


def sweep_training_sets(data: BenchmarkData, params: BenchmarkParams) -> tuple[dict[int, str], dict[str, Schedule]]:
    """Which schedule each sweep point uses, and the schedules the arms do not already provide.

    0 synthetic images per class is the real_only arm and all of them (when every class has the
    same number) the augmented arm; the other points get training sets of their own.
    """
    counts = np.bincount(data.synthetic.labels, minlength=len(data.class_names))
    points = {0: "real_only"} if "real_only" in params.arms else {}
    if np.all(counts == counts[0]) and "augmented" in params.arms:
        points[int(counts[0])] = "augmented"
    extra = {}
    for n in sorted(set(params.sweep) - set(points)):
        points[n] = name = f"augmented_{n}_per_class"
        extra[name] = data.augmented_with(n, params)
    return dict(sorted(points.items())), extra


def sweep_table(points: dict[int, ArmRuns], labels: np.ndarray) -> pd.DataFrame:
    """One row per sweep point: each metric's mean and std over seeds."""
    rows = []
    for n, runs in points.items():
        values = seed_scores(runs, labels)
        row: dict[str, Any] = {"n_synthetic_per_class": n}
        for name in METRICS:
            row[f"{name}_mean"] = float(np.mean(values[name]))
            row[f"{name}_std"] = float(np.std(values[name], ddof=1)) if len(values[name]) > 1 else None
        rows.append(row)
    return pd.DataFrame(rows)
