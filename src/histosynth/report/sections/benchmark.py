"""The benchmark section: the classifier trained on each training-data arm, tested on real images.

Reads reports/benchmark/: metrics.json (mean and spread over seeds per arm, confidence intervals
of the figures and of the gains), roc/<arm>.csv, confusion/<arm>.csv and the optional sweep.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from histosynth import paths
from histosynth.report import figures
from histosynth.report.inputs import Missing, read_json, read_table
from histosynth.report.schemas import ArmMetrics, BenchmarkMetrics, Gain, number_or_none

ARM_TITLES = {
    "real_only": "real only",
    "affine": "real + affine augmentation",
    "augmented": "real + synthetic",
    "affine_synthetic": "real + affine + synthetic",
    "synthetic_only": "synthetic only",
}
SWEEP_COLUMNS = ["n_synthetic_per_class", "accuracy_mean", "accuracy_std"]
METRIC_TITLES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "auc": "macro AUC"}


@dataclass(frozen=True)
class ArmRow:
    title: str
    metrics: ArmMetrics


@dataclass(frozen=True)
class GainRow:
    comparison: str
    metric: str
    gain: Gain

    @property
    def verdict(self) -> str:
        if self.gain.ci_low > 0:
            return "better"
        if self.gain.ci_high < 0:
            return "worse"
        return "no clear difference"


def synthetic_answer(gains: dict[str, dict[str, Gain]]) -> str | None:
    """The plain answer to "did the synthetic images help?": the accuracy gain of real + synthetic over
    real only (and of real + affine + synthetic over affine augmentation), judged by its interval."""
    sentences = []
    for key, lead in (("augmented_vs_real_only", "Did the synthetic images help?"),
                      ("affine_synthetic_vs_affine", "On top of affine augmentation:")):
        gain = gains.get(key, {}).get("accuracy")
        if gain is None:
            continue
        figure = f"{gain.mean:+.3f} accuracy [{gain.ci_low:+.3f}, {gain.ci_high:+.3f}]"
        verdict = GainRow(key, "accuracy", gain).verdict
        answer = {"better": f"yes, {figure}, the interval above 0.",
                  "worse": f"no, they made it worse: {figure}, the interval below 0.",
                  "no clear difference": f"not shown: {figure}, the interval includes 0."}[verdict]
        sentences.append(f"{lead} {answer[0].upper()}{answer[1:]}")
    return " ".join(sentences) or None


@dataclass(frozen=True)
class ConfusionTable:
    arm: str
    classes: list[str]
    counts: list[list[int]]  # [actual][predicted]
    shares: list[list[float]]  # counts / row total: where each actual class's images went


@dataclass(frozen=True)
class BenchmarkView:
    arms: list[ArmRow]
    chart: bytes  # every arm's accuracy and AUC with their intervals
    gains: list[GainRow]
    answer: str | None  # whether the synthetic images helped, in words
    seeds: list[int]
    n_test: int | None
    classifier: str | None
    confidence: float | None  # level of the confidence intervals, when metrics.json states it
    roc: bytes | Missing
    confusion: list[ConfusionTable] | Missing
    sweep: bytes | None  # the sweep is optional; no note when it was not run


def arm_title(arm: str) -> str:
    return ARM_TITLES.get(arm, arm.replace("_", " "))


def comparison_title(key: str) -> str:
    """``augmented_vs_real_only`` -> ``real + synthetic vs real only``."""
    first, _, second = key.partition("_vs_")
    return f"{arm_title(first)} vs {arm_title(second)}" if second else key


def benchmark_section(root: Path, class_names: list[str]) -> BenchmarkView | Missing:
    folder = root / paths.BENCHMARK_REPORT_DIR
    metrics = read_json(folder / "metrics.json", BenchmarkMetrics)
    if metrics is None:
        return Missing("benchmark")
    order = [arm for arm in ARM_TITLES if arm in metrics.arms] + [a for a in metrics.arms if a not in ARM_TITLES]
    sweep = read_table(folder / "sweep.csv", SWEEP_COLUMNS, numeric=SWEEP_COLUMNS)
    arms = [ArmRow(arm_title(arm), metrics.arms[arm]) for arm in order]
    return BenchmarkView(
        arms=arms,
        chart=figures.arm_intervals([(row.title, {"accuracy": row.metrics.accuracy, "auc": row.metrics.auc})
                                     for row in arms]),
        gains=[GainRow(comparison_title(key), METRIC_TITLES.get(metric, metric), gain)
               for key, by_metric in metrics.gains.items() for metric, gain in by_metric.items()],
        answer=synthetic_answer(metrics.gains),
        seeds=metrics.seeds,
        n_test=metrics.n_test,
        classifier=metrics.classifier,
        confidence=_confidence(metrics.bootstrap.get("confidence")),
        roc=_roc(folder / "roc", order),
        confusion=_confusions(folder / "confusion", order, class_names),
        sweep=None if sweep is None or sweep.empty else figures.sweep_curve(sweep),
    )


def _confidence(value: object) -> float | None:
    level = number_or_none(value)
    return level if level is not None and 0 < level < 1 else None


def _roc(folder: Path, arms: list[str]) -> bytes | Missing:
    columns = ["curve", "fpr", "tpr"]
    curves = {arm_title(arm): table for arm in arms
              if (table := read_table(folder / f"{arm}.csv", columns, numeric=["fpr", "tpr"])) is not None}
    return figures.roc_curves(curves) if curves else Missing("benchmark")


def _confusions(folder: Path, arms: list[str], class_names: list[str]) -> list[ConfusionTable] | Missing:
    tables = []
    for arm in arms:
        rows = read_table(folder / f"{arm}.csv", ["actual", "predicted"])
        if rows is not None:
            tables.append(confusion_table(arm_title(arm), rows, class_names))
    return tables or Missing("benchmark")


def confusion_table(arm: str, rows: pd.DataFrame, class_names: list[str]) -> ConfusionTable:
    """Counts per (actual, predicted) class; classes in label order, then any others in order of appearance."""
    seen = pd.unique(pd.concat([rows["actual"], rows["predicted"]]).astype(str))
    classes = list(class_names) + [name for name in seen if name not in class_names]
    counts = pd.crosstab(rows["actual"].astype(str), rows["predicted"].astype(str)).reindex(
        index=classes, columns=classes, fill_value=0)
    shares = counts.div(counts.sum(axis=1).where(lambda total: total > 0), axis=0).fillna(0.0)
    return ConfusionTable(arm, classes, counts.to_numpy().tolist(), shares.to_numpy().round(4).tolist())
