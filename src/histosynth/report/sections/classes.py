"""Per class: real and synthetic sample grids, the colour histogram overlay, image counts, QA verdict."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from histosynth import paths
from histosynth.fsutil import unique_safe_names
from histosynth.manifest import MANIFEST_NAME, SPLITS, class_names_of, read_manifest
from histosynth.report import figures
from histosynth.report.grids import choose_rows, sample_grid
from histosynth.report.inputs import Missing, read_table
from histosynth.report.schemas import QaClass, QaMetrics
from histosynth.report.sections.qa import gate_title

log = logging.getLogger(__name__)

HISTOGRAM_COLUMNS = ["intensity"] + [f"{c}_{s}" for c in figures.CHANNEL_COLOURS for s in ("real", "synthetic")]


@dataclass(frozen=True)
class ClassView:
    name: str
    anchor: str  # id of the class's part of the page
    counts: dict[str, int]  # real images per split, and synthetic images
    real_grid: bytes | Missing
    synthetic_grid: bytes | Missing
    histogram: bytes | Missing
    qa_passed: bool | None  # None: QA not run for this class
    failed_gates: list[str]  # titles of the gates this class failed


def _manifest(folder: Path) -> pd.DataFrame | None:
    return read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else None


def class_sections(root: Path, qa: QaMetrics | None) -> list[ClassView] | Missing:
    """One view per class in label order; the class list comes from the real images, else the QA metrics."""
    real, synthetic = _manifest(root / paths.REAL_DIR), _manifest(root / paths.SYNTHETIC_DIR)
    if real is not None:
        names = class_names_of(real)
    elif qa is not None:
        names = list(qa.classes)
    else:
        return Missing("ingest")
    views = []
    for label, (name, folder) in enumerate(zip(names, unique_safe_names(names))):
        log.info("class %s: sample grids and colour histograms", name)
        views.append(_class_view(root, label, name, folder, _of_class(real, name), _of_class(synthetic, name),
                                 None if qa is None else qa.classes.get(name)))
    return views


def _of_class(manifest: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
    return None if manifest is None else manifest[manifest["class_name"] == name]


def _class_view(root: Path, label: int, name: str, folder: str, real: pd.DataFrame | None,
                synthetic: pd.DataFrame | None, verdict: QaClass | None) -> ClassView:
    return ClassView(
        name=name,
        anchor=f"class-{folder}",
        counts=_counts(real, synthetic),
        real_grid=_grid(root / paths.REAL_DIR, None if real is None else real[real["split"] == "train"], label,
                        "ingest"),
        synthetic_grid=_grid(root / paths.SYNTHETIC_DIR, synthetic, label, "generate"),
        histogram=_histogram(root / paths.QA_REPORT_DIR / "histograms" / f"{folder}.csv"),
        qa_passed=None if verdict is None else verdict.passed,
        failed_gates=[] if verdict is None else [gate_title(gate) for gate, result in verdict.gates.items()
                                                 if result.passed is False],
    )


def _counts(real: pd.DataFrame | None, synthetic: pd.DataFrame | None) -> dict[str, int]:
    counts = {} if real is None else {f"real {split}": int((real["split"] == split).sum()) for split in SPLITS}
    if synthetic is not None:
        counts["synthetic"] = len(synthetic)
    return counts


def _grid(folder: Path, rows: pd.DataFrame | None, label: int, stage: str) -> bytes | Missing:
    if rows is None:
        return Missing(stage)
    if rows.empty:
        return Missing(stage, reason="no images of this class")
    return sample_grid(folder, choose_rows(rows, label))


def _histogram(path: Path) -> bytes | Missing:
    table = read_table(path, HISTOGRAM_COLUMNS, numeric=HISTOGRAM_COLUMNS)
    return Missing("qa") if table is None else figures.histogram_overlay(table)
