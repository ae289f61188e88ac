"""How well a classifier does on the real test split: accuracy, balanced accuracy, macro AUC, ROC curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score, roc_curve

METRICS = ("accuracy", "balanced_accuracy", "auc")
MICRO = "micro"


def auc_classes(n_classes: int) -> list[int]:
    """The classes whose one-vs-rest AUCs are averaged: all of them, or class 1 alone for two classes

    (scikit-learn's binary AUC, which the two one-vs-rest AUCs equal up to float rounding).
    """
    return [1] if n_classes == 2 else list(range(n_classes))


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Macro-averaged one-vs-rest ROC AUC of (N, K) class probabilities."""
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro",
                               labels=np.arange(probabilities.shape[1])))


def scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Every figure of :data:`METRICS` for one trained classifier's test probabilities."""
    predictions = probabilities.argmax(axis=1)
    return {"accuracy": float(accuracy_score(labels, predictions)),
            "balanced_accuracy": float(balanced_accuracy_score(labels, predictions)),
            "auc": macro_auc(labels, probabilities)}


def roc_curves(labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Per-class one-vs-rest ROC curves and the micro average, rows ``curve, fpr, tpr``.

    ``curve`` is the class name or ``micro`` (every class's one-vs-rest decisions pooled, as in
    the thesis' appendix). Points that do not change the curve's shape are dropped.
    """
    onehot = np.eye(len(class_names), dtype=bool)[labels]
    curves = [(name, onehot[:, k], probabilities[:, k]) for k, name in enumerate(class_names)]
    curves.append((MICRO, onehot.ravel(), probabilities.ravel()))
    frames = []
    for name, truth, score in curves:
        fpr, tpr, _ = roc_curve(truth, score, drop_intermediate=True)
        frames.append(pd.DataFrame({"curve": name, "fpr": fpr, "tpr": tpr}))
    return pd.concat(frames, ignore_index=True)
