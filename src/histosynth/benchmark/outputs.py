"""Writing ``reports/benchmark/``: metrics for `dvc metrics`, ROC, confusion, history and sweep data for `dvc plots`.

    metrics.json          the figures of histosynth.benchmark.summary
    roc/<arm>.csv         curve,fpr,tpr: per-class one-vs-rest and micro-average ROC curves of the
                          arm's probabilities averaged over seeds
    confusion/<arm>.csv   actual,predicted,seed: one row per test image and seed (class names)
    history/<arm>.csv     seed,step,train_loss,val_accuracy: each training's validation scores
    sweep.csv             n_synthetic_per_class,<metric>_mean,<metric>_std: the augmented arm's
                          figures against the number of synthetic images per class
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histosynth.benchmark.scores import roc_curves
from histosynth.benchmark.training import ArmRuns
from histosynth.fsutil import atomic_output_dir
from histosynth.neutralise import csv_frame

METRICS_FILE = "metrics.json"
SWEEP_FILE = "sweep.csv"


def write_outputs(out_dir: Path | str, metrics: dict[str, Any], arms: dict[str, ArmRuns], labels: np.ndarray,
                  class_names: Sequence[str], seeds: Sequence[int], sweep: pd.DataFrame) -> None:
    """Replace ``out_dir`` with the benchmark's outputs (only once all of them are written)."""
    with atomic_output_dir(out_dir) as tmp:
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        for folder in ("roc", "confusion", "history"):
            (tmp / folder).mkdir()
        for arm, runs in arms.items():
            _csv(roc_curves(labels, runs.probabilities.mean(axis=0), class_names), tmp / "roc" / f"{arm}.csv")
            _csv(confusion_rows(labels, runs.probabilities, class_names, seeds), tmp / "confusion" / f"{arm}.csv")
            _csv(history_rows(runs, seeds), tmp / "history" / f"{arm}.csv")
        _csv(sweep, tmp / SWEEP_FILE)


def confusion_rows(labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                   seeds: Sequence[int]) -> pd.DataFrame:
    """``actual, predicted, seed`` for every test image and seed: the counts over all seeds."""
    names = np.asarray(class_names, dtype=object)
    return pd.concat([pd.DataFrame({"actual": names[labels], "predicted": names[p.argmax(axis=1)], "seed": seed})
                      for seed, p in zip(seeds, probabilities)], ignore_index=True)


def history_rows(runs: ArmRuns, seeds: Sequence[int]) -> pd.DataFrame:
    return pd.DataFrame([{"seed": seed, "step": h.step, "train_loss": h.train_loss, "val_accuracy": h.val_accuracy}
                         for seed, result in zip(seeds, runs.results) for h in result.history])


def _csv(frame: pd.DataFrame, path: Path) -> None:
    path.write_text(csv_frame(frame).to_csv(index=False, lineterminator="\n", float_format="%.6g"), encoding="utf-8")
