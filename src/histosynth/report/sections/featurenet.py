"""The QA feature classifier's training curve (reports/featurenet/history.csv): the network whose
features FID, the right-class check and the feature-space near-copy check rely on."""

from __future__ import annotations

from pathlib import Path

from histosynth import paths
from histosynth.report import figures
from histosynth.report.inputs import Missing, read_table

HISTORY_COLUMNS = ["epoch", "train_loss", "val_accuracy"]


def featurenet_curve(root: Path) -> bytes | Missing:
    history = read_table(root / paths.FEATURENET_REPORT_DIR / "history.csv", HISTORY_COLUMNS, numeric=HISTORY_COLUMNS)
    if history is None:
        return Missing("featurenet")
    if history.empty:
        return Missing("featurenet", reason="the feature classifier's history has no epochs: run "
                                            "`dvc repro featurenet`")
    return figures.featurenet_curves(history)
