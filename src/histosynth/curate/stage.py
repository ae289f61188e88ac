"""The ``curate`` stage: score every generated candidate, keep the best-behaved ``n_per_class`` per class.

Reads ``data/candidates`` (written by ``generate``), the cross-fitted classifiers of
``models/featurenet``, the real train and val splits and the affine children; writes
``data/synthetic`` (the kept images, unchanged bytes, an ``MD5SUMS`` per class folder and a
manifest with every score) and ``reports/curate/`` (``scores.csv``: every candidate with its
scores, the tests it passed and whether it was kept; ``metrics.json``: per class thresholds and
counts). Candidates are read in chunks, and the real images (decoded once into image stores) a
batch at a time, so memory does not grow with their number.

Selection keeps, per class, the first ``n_per_class`` candidates in generation order that pass
every enabled test (generation order is seeded and per image, so a larger run keeps what a
smaller one kept first). When too few pass, the class is filled up with the most confident of
the others, each marked ``filled`` in the manifest, and a warning says how many.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histosynth import progress
from histosynth.classifier.checkpoint import load_classifier
from histosynth.config.curate import CurateParams
from histosynth.curate.acceptance import CandidateTests
from histosynth.curate.scores import CopyReference, embed_all
from histosynth.image_sets import open_image_set
from histosynth.image_store import concat, take
from histosynth.errors import DataError
from histosynth.fsutil import atomic_output_dir, atomic_write_text
from histosynth.images import read_png_rgb
from histosynth.manifest import EDIT_OF, MANIFEST_NAME, SOURCE_AFFINE, class_names_of, read_manifest, write_manifest
from histosynth.md5sums import write_md5sums
from histosynth.neutralise import csv_frame
from histosynth.output_policy import check_outputs

log = logging.getLogger(__name__)

CHUNK = 2048
SCORES_FILE = "scores.csv"
METRICS_FILE = "metrics.json"
SCORE_COLUMNS = ("confidence", "realism", "realism_votes", "copy_ratio", "near_copy_pixel", "feature_copy_ratio",
                 "near_copy_feature", "passed_confidence", "passed_realism")  # in scores.csv's order


@dataclass(frozen=True)
class References:
    tests: CandidateTests  # confidence and realism
    copies: dict[str, CopyReference]  # by space: pixel, feature

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.tests.class_names

    def source_folds(self, sources: np.ndarray | None) -> np.ndarray | None:
        """Per candidate, the fold of its source (-1: no source); None when no candidate is an edit."""
        if sources is None or not np.any(sources != ""):
            return None
        fold_of = self.tests.fold_of
        unknown = sorted(set(sources[sources != ""].tolist()) - set(fold_of))
        if unknown:
            raise DataError(f"candidates edit {unknown[:3]}, which are not real train images here; regenerate them "
                            "from this data/real (`dvc repro generate`)")
        return np.array([fold_of.get(s, -1) for s in sources.tolist()], np.int64)


def curate(params: CurateParams, n_per_class: int, candidates_dir: Path, real_dir: Path, augmented_dir: Path | None,
           featurenet_dir: Path, out_dir: Path, report_dir: Path) -> pd.DataFrame:
    """Score ``candidates_dir``, write the kept images to ``out_dir`` and the scores to ``report_dir``;
    return the kept images' manifest."""
    started = time.perf_counter()
    candidates_dir, out_dir, report_dir = Path(candidates_dir), Path(out_dir), Path(report_dir)
    check_outputs({"output folder": out_dir, "report folder": report_dir},
                  {"candidates": candidates_dir, "real images": real_dir, "augmented images": augmented_dir,
                   "feature net": featurenet_dir})
    candidates = read_manifest(candidates_dir)
    references = _references(params, real_dir, augmented_dir, featurenet_dir)
    if tuple(class_names_of(candidates)) != references.class_names:
        raise DataError(f"{candidates_dir}: classes {class_names_of(candidates)} (by label) differ from the real ones "
                        f"{list(references.class_names)}; regenerate from a generator trained on this data")
    short = candidates.groupby("label").size()
    if (short < n_per_class).any():
        raise DataError(f"{candidates_dir}: {int(short.min())} candidates for a class, fewer than "
                        f"generate.n_per_class = {n_per_class}; rerun generate")
    scores = _score(params, candidates, candidates_dir, references)
    kept = _select(params, scores, n_per_class)
    manifest = _write(candidates, candidates_dir, scores, kept, out_dir)
    _report(params, scores, kept, references, report_dir)
    log.info("kept %d of %d candidates (%d classes) in %s in %.1f s; scores in %s", len(manifest), len(candidates),
             len(references.class_names), out_dir, time.perf_counter() - started, report_dir)
    return manifest


def _references(params: CurateParams, real_dir: Path, augmented_dir: Path | None, featurenet_dir: Path) -> References:
    train, val = open_image_set(real_dir, "train"), open_image_set(real_dir, "val")  # read a batch at a time
    if len(val) == 0:
        raise DataError(f"{real_dir}: the real val split is empty; curation calibrates its near-copy test on it")
    tests = CandidateTests.of(params, real_dir, featurenet_dir)
    manifest = read_manifest(real_dir)
    images, labels = train.images, train.labels
    originals = manifest.loc[manifest["split"] == "train", "id"].to_numpy(str)
    if augmented_dir is not None and (Path(augmented_dir) / MANIFEST_NAME).is_file():
        augmented = read_manifest(augmented_dir)
        children = augmented["source"] == SOURCE_AFFINE
        child_images = take(open_image_set(augmented_dir).images, children.to_numpy())
        images = concat([images, child_images])
        originals = np.concatenate([originals, augmented.loc[children, "origin"].to_numpy(str)])
        labels = np.concatenate([labels, augmented.loc[children, "label"].to_numpy(np.int64)])
    calibration = (images, originals, labels, val.images, val.labels, len(tests.class_names),
                   params.near_copy_percentile)
    copies = {"pixel": CopyReference.in_pixels(*calibration),
              "feature": CopyReference.in_features(load_classifier(featurenet_dir)[0], *calibration)}
    return References(tests, copies)


def _score(params: CurateParams, candidates: pd.DataFrame, folder: Path, references: References) -> pd.DataFrame:
    columns: dict[str, list[np.ndarray]] = {}
    for start in progress.bar(range(0, len(candidates), CHUNK), desc="curate", unit="chunk", leave=False, min_total=2):
        rows = candidates.iloc[start : start + CHUNK]
        images = np.stack([read_png_rgb(folder / p) for p in rows["path"]])
        labels = rows["label"].to_numpy(np.int64)
        sources = rows[EDIT_OF].fillna("").to_numpy(str) if EDIT_OF in rows else None
        chunk = references.tests.score(embed_all(references.tests.models, images), labels,
                                       references.source_folds(sources))
        for space, copies in references.copies.items():
            chunk["copy_ratio" if space == "pixel" else "feature_copy_ratio"], chunk[f"near_copy_{space}"] = \
                copies.ratios(images, sources)
        for name, values in chunk.items():
            columns.setdefault(name, []).append(values)
    scores = candidates[["id", "class_name", "label"]].reset_index(drop=True)
    for name in SCORE_COLUMNS:
        scores[name] = np.concatenate(columns[name])
    scores["near_copy"] = np.zeros(len(scores), bool)
    for space in params.near_copy_spaces:
        scores["near_copy"] |= scores[f"near_copy_{space}"]
    scores["passed_copy"] = ~scores["near_copy"]
    return scores


def _select(params: CurateParams, scores: pd.DataFrame, n_per_class: int) -> pd.Series:
    """'kept' / 'filled' / '' per candidate."""
    passes = scores["passed_confidence"] & scores["passed_realism"]
    if params.reject_near_copies:
        passes &= scores["passed_copy"]
    outcome = pd.Series("", index=scores.index)
    for label, rows in scores.groupby("label", sort=True):
        if not params.enabled:
            outcome[rows.index[:n_per_class]] = "kept"
            continue
        good = rows.index[passes[rows.index]][:n_per_class]
        outcome[good] = "kept"
        missing = n_per_class - len(good)
        if missing:
            rest = rows.drop(good)
            if params.reject_near_copies:
                rest = rest[rest["passed_copy"]] if rest["passed_copy"].sum() >= missing else rest
            fill = rest.sort_values("confidence", ascending=False, kind="stable").index[:missing]
            outcome[fill] = "filled"
            log.warning("class %r: only %d of %d candidates passed curation; %d more kept by confidence "
                        "(raise generate.overgenerate for more candidates)", rows["class_name"].iloc[0],
                        len(good), len(rows), missing)
    return outcome


def _write(candidates: pd.DataFrame, source: Path, scores: pd.DataFrame, outcome: pd.Series,
           out_dir: Path) -> pd.DataFrame:
    keep = (outcome != "").to_numpy()
    manifest = candidates.reset_index(drop=True)[keep].copy()
    for name in ("confidence", "realism", "copy_ratio"):
        manifest[name] = scores.loc[keep, name].to_numpy(np.float64)
    manifest["curation"] = outcome[keep].to_numpy()
    with atomic_output_dir(out_dir) as tmp:
        for folder, rows in manifest.groupby(manifest["path"].str.split("/").str[0], sort=True):
            (tmp / folder).mkdir()
            for rel in rows["path"]:
                shutil.copyfile(source / rel, tmp / rel)
            write_md5sums(tmp / folder, zip(rows["path"].str.split("/").str[1], rows["md5"]))
        write_manifest(manifest, tmp)
    return manifest


def _report(params: CurateParams, scores: pd.DataFrame, outcome: pd.Series, references: References,
            report_dir: Path) -> None:
    table = scores.assign(curation=outcome.to_numpy())
    per_class: dict[str, Any] = {}
    for label, rows in table.groupby("label", sort=True):
        name = references.class_names[label]
        per_class[name] = {
            "candidates": len(rows),
            "passed_confidence": int(rows["passed_confidence"].sum()),
            "passed_realism": int(rows["passed_realism"].sum()),
            "near_copies": int(rows["near_copy"].sum()),
            "kept": int((rows["curation"] == "kept").sum()),
            "filled": int((rows["curation"] == "filled").sum()),
            "confidence_threshold": float(references.tests.confidence_thresholds[label]),
            "near_copies_pixel": int(rows["near_copy_pixel"].sum()),
            "near_copies_feature": int(rows["near_copy_feature"].sum()),
            "near_copy_ratio_threshold": float(references.copies["pixel"].thresholds[label]),
            "feature_copy_ratio_threshold": float(references.copies["feature"].thresholds[label]),
            "mean_confidence_kept": float(rows.loc[rows["curation"] != "", "confidence"].mean()),
            "mean_confidence_candidates": float(rows["confidence"].mean()),
        }
    metrics = {"enabled": params.enabled, "params": params.model_dump(),
               "realism_thresholds": [t for _, t in references.tests.realism], "classes": per_class}
    with atomic_output_dir(report_dir) as tmp:
        csv_frame(table).to_csv(tmp / SCORES_FILE, index=False, lineterminator="\n", float_format="%.6g")
        atomic_write_text(tmp / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
