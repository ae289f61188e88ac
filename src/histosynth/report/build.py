"""``build_report``: reports/index.html from whatever the pipeline has produced so far."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from histosynth import __version__, paths
from histosynth.errors import DataError
from histosynth.fsutil import atomic_write_text
from histosynth.output_policy import check_outputs, file_head_holds
from histosynth.report.inputs import Missing
from histosynth.report.page import render_page
from histosynth.report.sections.augment import augment_section
from histosynth.report.sections.benchmark import benchmark_section
from histosynth.report.sections.classes import class_sections
from histosynth.report.sections.curation import curation_section
from histosynth.report.sections.featurenet import featurenet_curve
from histosynth.report.sections.nearcopies import near_copy_section
from histosynth.report.sections.qa import load_qa_metrics, qa_section
from histosynth.report.sections.training import training_section

log = logging.getLogger(__name__)

# What the report reads, relative to the project root: the report file may not lie in any of them.
REPORT_INPUTS = (paths.REAL_DIR, paths.SYNTHETIC_DIR, paths.CANDIDATES_DIR, paths.AUGMENTED_DIR, paths.QA_REPORT_DIR,
                 paths.TRAIN_REPORT_DIR, paths.AUGMENT_REPORT_DIR, paths.FEATURENET_REPORT_DIR,
                 paths.CURATE_REPORT_DIR, paths.BENCHMARK_REPORT_DIR)


def is_report(path: Path) -> bool:
    """Whether the file ``path`` is a report histosynth wrote (its page names histosynth as generator)."""
    return file_head_holds(path, (b'<meta name="generator" content="histosynth',))


def build_report(root: Path = Path("."), out: Path | None = None) -> Path:
    """Write the self-contained HTML report of the project at ``root`` to ``out`` (default root/reports/index.html).

    Every section is optional: one whose inputs are missing says which stage makes them. A
    malformed input raises a DataError naming the file. The same inputs give the same bytes.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such project folder; pass --root <project folder>")
    out = root / paths.REPORT_HTML if out is None else Path(out)
    check_outputs({}, {str(folder): root / folder for folder in REPORT_INPUTS},
                  files={"report file": (out, is_report, "an HTML report")})
    start = time.perf_counter()
    qa_metrics = load_qa_metrics(root)
    classes = class_sections(root, qa_metrics)
    class_names = [] if isinstance(classes, Missing) else [view.name for view in classes]
    log.info("near-copy gallery, augmentation previews, training curves and benchmark charts")
    html = render_page(
        qa=qa_section(qa_metrics),
        featurenet=featurenet_curve(root),
        near_copies=near_copy_section(root, class_names, qa_metrics),
        classes=classes,
        curation=curation_section(root, class_names),
        augment=augment_section(root, class_names),
        training=training_section(root),
        benchmark=benchmark_section(root, class_names),
        version=__version__,
    )
    atomic_write_text(out, html)
    log.info("wrote %s (%.1f MB) in %.1f s", out, len(html.encode()) / 1e6, time.perf_counter() - start)
    return out
