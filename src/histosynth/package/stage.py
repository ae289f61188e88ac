"""The ``package`` stage: data/real + data/synthetic (+ QA verdict, GAN record) -> ``data/package/``."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

from histosynth.config import Params
from histosynth.errors import DataError, GateFailed
from histosynth.fsutil import atomic_output_dir, atomic_write_bytes, atomic_write_text
from histosynth.images import md5_file
from histosynth.json_record import read_json_record
from histosynth.manifest import class_names_of
from histosynth.md5sums import write_md5sums
from histosynth.model_record import read_record
from histosynth.output_policy import check_outputs
from histosynth.package.assemble import Job, place_files
from histosynth.package.card import citation_text, dataset_card
from histosynth.package.collect import SOURCE_FILE, plan_rows
from histosynth.package.croissant import croissant_bytes, croissant_metadata
from histosynth.package.database import package_database
from histosynth.package.provenance import source_provenance
from histosynth.package.schema import (
    CARD_NAME, COLUMNS, CROISSANT_NAME, IMAGES_DIR, METADATA_CSV, METADATA_JSONL, METADATA_PARQUET, SQL_DIR,
    metadata_csv_bytes, metadata_jsonl_bytes, metadata_parquet_bytes, validate_metadata,
)
from histosynth.package.sql import write_dumps
from histosynth.synthetic_set import SYNTHETIC_SET_KEY, synthetic_set_md5

log = logging.getLogger(__name__)


def _check_verdict_shape(metrics: dict[str, Any], where: Path, rerun: str) -> None:
    classes = metrics.get("classes", {})
    if not isinstance(metrics.get("passed"), bool) or not isinstance(classes, dict) or not all(
            isinstance(figures, dict) and isinstance(figures.get("gates", {}), dict)
            and all(isinstance(gate, dict) for gate in figures.get("gates", {}).values())
            for figures in classes.values()):
        raise DataError(f"{where}: not a QA verdict as the qa stage writes it (passed: true/false, classes: "
                        f"{{name: {{figures, gates}}}}); {rerun}")


def read_qa_verdict(qa_metrics_file: Path, enforce: bool, synthetic_dir: Path) -> dict[str, Any]:
    """reports/qa/metrics.json, or a DataError when the synthetic set may not be packaged: the
    verdict is missing or malformed, judged another synthetic set, or failed (with ``enforce``)."""
    rerun = f"rerun QA on {synthetic_dir} (`dvc repro qa`, or `histosynth qa --synthetic {synthetic_dir}`)"
    if not qa_metrics_file.is_file():
        raise DataError(f"{qa_metrics_file}: no QA verdict; run the qa stage first (`dvc repro qa`)")
    metrics = read_json_record(qa_metrics_file, rerun)
    _check_verdict_shape(metrics, qa_metrics_file, rerun)
    judged, packaged = metrics.get(SYNTHETIC_SET_KEY), synthetic_set_md5(synthetic_dir)
    if judged is None:
        raise DataError(f"{qa_metrics_file}: does not say which synthetic set it judged (no {SYNTHETIC_SET_KEY}: "
                        f"written by an older histosynth or by hand); {rerun}")
    if judged != packaged:
        raise DataError(f"{qa_metrics_file}: judged another synthetic set ({SYNTHETIC_SET_KEY} {judged}), not "
                        f"{synthetic_dir} ({packaged}); {rerun}")
    if enforce and metrics.get("passed") is not True:
        failed = [name for name, figures in metrics.get("classes", {}).items() if not figures.get("passed")]
        raise GateFailed(f"{qa_metrics_file}: the synthetic set failed QA (classes: {', '.join(failed) or '?'}), "
                        "so it is not packaged; improve the GAN, or set qa.enforce: false to package it anyway")
    return metrics


# What decides how a package is made besides params.yaml (which the card lists in full).
CODE_PATHS = ("src", "stages", "dvc.yaml", "pyproject.toml")


def git_revision(project: Path = Path(".")) -> str:
    """The last commit that changed the project's code (src/, stages/, dvc.yaml, pyproject.toml),
    marked when those have uncommitted changes; 'unknown' outside a git repository.

    Not simply HEAD: commits that only record results (dvc.lock, reports/) or change params
    (listed in the card anyway) would otherwise change the card of an identical rerun.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True).stdout.strip()

    paths = [p for p in CODE_PATHS if (project / p).exists()]
    try:
        commit = git("log", "-1", "--format=%H", "--", *paths) or "unknown (no commit yet)"
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *paths)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} with uncommitted changes" if dirty else commit


def build_package(params: Params, real_dir: Path, synthetic_dir: Path, gan_dir: Path, qa_metrics_file: Path,
                  out_dir: Path, revision: str | None = None) -> pd.DataFrame:
    """Write the package to ``out_dir`` (replaced atomically) and return its metadata.

    ``revision`` is recorded in the dataset card; None = the current git revision.
    """
    started = time.perf_counter()
    check_outputs({"package folder": out_dir}, {"real images": real_dir, "synthetic images": synthetic_dir,
                                               "model folder": gan_dir, "QA verdict": qa_metrics_file})
    qa_metrics = read_qa_verdict(Path(qa_metrics_file), params.qa.enforce, Path(synthetic_dir))
    gan_record = read_record(Path(gan_dir))
    provenance = source_provenance(params)
    plan = plan_rows(Path(real_dir), Path(synthetic_dir), params.package.real_splits)
    class_names = class_names_of(plan)
    out_dir = Path(out_dir)
    with atomic_output_dir(out_dir) as tmp:
        metadata = _place_images(plan, tmp, link=params.package.link == "auto")
        _write_md5sums_per_class(metadata, tmp)
        atomic_write_bytes(tmp / METADATA_CSV, metadata_csv_bytes(metadata))
        atomic_write_bytes(tmp / METADATA_PARQUET, metadata_parquet_bytes(metadata))
        atomic_write_bytes(tmp / METADATA_JSONL, metadata_jsonl_bytes(metadata))
        sql_files = _write_sql_dumps(metadata, gan_record, qa_metrics, params, tmp)
        card = dataset_card(metadata, class_names, params, gan_record, qa_metrics,
                            revision if revision is not None else git_revision(), sql_files, provenance)
        atomic_write_text(tmp / CARD_NAME, card)
        croissant = croissant_metadata(tmp, metadata, class_names, params, provenance, citation_text(params), sql_files)
        atomic_write_bytes(tmp / CROISSANT_NAME, croissant_bytes(croissant))
        _write_top_md5sums(tmp, [CARD_NAME, METADATA_CSV, METADATA_PARQUET, METADATA_JSONL, *sql_files, CROISSANT_NAME])
    log.info("packaged %d images (%d real, %d synthetic) of %d classes into %s in %.1f s", len(metadata),
             (metadata["source"] == "real").sum(), (metadata["source"] == "synthetic").sum(), len(class_names),
             out_dir, time.perf_counter() - started)
    return metadata


def _place_images(plan: pd.DataFrame, root: Path, link: bool) -> pd.DataFrame:
    for folder in plan["class_folder"].unique():
        (root / IMAGES_DIR / folder).mkdir(parents=True)
    jobs = (Job(Path(source), root / target, md5)
            for source, target, md5 in zip(plan[SOURCE_FILE], plan["file_path"], plan["md5"]))
    placed = list(place_files(jobs, len(plan), link))
    n_linked = sum(p.linked for p in placed)
    log.info("%d image files hard-linked, %d copied", n_linked, len(placed) - n_linked)
    metadata = plan[list(COLUMNS)].copy()
    metadata["width"] = [p.width for p in placed]
    metadata["height"] = [p.height for p in placed]
    return validate_metadata(metadata, where="package metadata")


def _write_md5sums_per_class(metadata: pd.DataFrame, root: Path) -> None:
    for folder, rows in metadata.groupby("class_folder", sort=True):
        write_md5sums(root / IMAGES_DIR / str(folder), zip(rows["id"] + ".png", rows["md5"]))


def _write_sql_dumps(metadata: pd.DataFrame, gan_record: dict[str, Any], qa_metrics: dict[str, Any],
                     params: Params, root: Path) -> list[str]:
    started = time.perf_counter()
    db = package_database(metadata, gan_record, qa_metrics, name=params.package.name, version=params.package.version)
    dumps = write_dumps(db, root / SQL_DIR)
    log.info("SQL dumps (%s) written in %.1f s", ", ".join(dumps), time.perf_counter() - started)
    return [path.relative_to(root).as_posix() for path in dumps.values()]


def _write_top_md5sums(root: Path, names: list[str]) -> None:
    write_md5sums(root, [(name, md5_file(root / name)) for name in names])
