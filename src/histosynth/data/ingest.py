"""The ``ingest`` stage: ``data.source`` -> ``<out>/{train,val,test}/<class folder>/<id>.png`` + manifest.

Images are written as RGB PNGs of ``data.image_size`` pixels (deterministic bytes), one folder
per class named by :func:`histosynth.fsutil.unique_safe_names` (the original class names stay
in the manifest). ``data.max_per_class`` caps the train split and ``data.max_eval_per_class``
the val and test splits, per class, by a choice seeded with ``(data.seed, split, label)``
that keeps the source's order; ``data.long_tail`` then cuts the named classes' train images to a
fraction (:func:`long_tail_indices`; what it kept is in the log and the ingest report). The whole output folder appears at once when everything has
been written, or not at all.

Every image is checked for exact and near-duplicates among the images before it
(histosynth.data.duplicate_check; ``data.duplicates``): the manifest's ``duplicate_of`` names
the first train image an image duplicates, ``drop`` leaves val/test copies out, and
``reports/ingest/`` lists what was found. ``group`` is the image's group (patient, slide,
original image; the image id where the source has none): no group is in two splits.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from histosynth import progress
from histosynth.config.data import DataParams
from histosynth.data.duplicate_check import DuplicateCheck
from histosynth.data.ingest_report import log_findings, write_ingest_report
from histosynth.data.source_images import SourceImages
from histosynth.data.sources import load_source, source_paths
from histosynth.errors import DataError
from histosynth.fsutil import atomic_output_dir, unique_safe_names
from histosynth.images import write_pngs
from histosynth.manifest import SOURCE_REAL, SPLITS, write_manifest
from histosynth.neutralise import Block, for_terminal
from histosynth.output_policy import check_outputs

log = logging.getLogger(__name__)

CAP_STREAM = 2  # keeps the caps' generator apart from other seeded choices made from data.seed
LONG_TAIL_STREAM = 3
WRITE_WORKERS = min(8, os.cpu_count() or 1)
COLUMNS = ["id", "path", "class_name", "label", "split", "source", "md5", "origin", "group", "duplicate_of"]


def ingest(params: DataParams, out_dir: Path | str, report_dir: Path | str | None = None) -> pd.DataFrame:
    """Read ``params.source`` and write it under ``out_dir`` (and the duplicate report into
    ``report_dir``, when given); return the manifest."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    check_outputs({"output folder": out_dir, "report folder": report_dir}, source_paths(params),
                  roots={"data.root": params.root})  # MedMNIST files live there
    source = load_source(params)
    rare = rare_labels(params, source.class_names)
    folders = unique_safe_names(source.class_names)
    check = DuplicateCheck(params.duplicate_action, params.duplicates.near_max_distance, params.image_size)
    with atomic_output_dir(out_dir) as tmp:
        rows: list[dict] = []
        for split in SPLITS:
            rows.extend(_write_split(source, split, folders, params, tmp, check, rare))
        manifest = pd.DataFrame(rows, columns=COLUMNS).astype({"label": "int64"})
        _require_training_images(manifest, source.class_names, params.source)
        write_manifest(manifest, tmp)
        log_findings(check)
        long_tail = long_tail_record(params, manifest) if rare else None
        if long_tail is not None:
            log.info("data.long_tail: kept %s train images of the rare classes (%.3g of each)",
                     for_terminal(str(long_tail["train_images"])), params.long_tail.keep)
        if report_dir is not None:
            write_ingest_report(check, int(manifest["group"].nunique()), report_dir, long_tail)
    table = count_table(manifest, source.class_names).rename(index=for_terminal)  # names as log lines show them
    log.info("images per class and split:\n%s", Block(table.to_string()))
    log.info("ingest: wrote %d images of %d px from %s to %s in %.1f s", len(manifest), params.image_size,
             params.source, out_dir, time.perf_counter() - started)
    return manifest


def _write_split(source: SourceImages, split: str, folders: list[str], params: DataParams, out: Path,
                 check: DuplicateCheck, rare: list[int]) -> list[dict]:
    """Check and write one split's (capped) images; the split's data is released when this returns."""
    part = source.read_split(split)
    cap = params.max_per_class if split == "train" else params.max_eval_per_class
    keep = capped_indices(part.labels, cap, (params.seed, CAP_STREAM, SPLITS.index(split)))
    if split == "train" and rare:
        keep = long_tail_indices(part.labels, keep, rare, params.long_tail.keep, (params.seed, LONG_TAIL_STREAM))
    if part.select is not None:
        part.select(keep)
    keep = keep.tolist()
    groups = part.groups if part.groups is not None else part.ids
    rows = [
        dict(id=part.ids[i], path=f"{split}/{folders[label]}/{part.ids[i]}.png", class_name=source.class_names[label],
             label=label, split=split, source=SOURCE_REAL, origin=part.origins[i], group=groups[i])
        for i, label in zip(keep, part.labels[keep].tolist())
    ]
    drop, duplicate_of = check.check(split, [(row["id"], row["class_name"], row["path"]) for row in rows],
                                     lambda k: part.image(keep[k]), out)
    for row, of in zip(rows, duplicate_of):
        row["duplicate_of"] = of
    kept = [k for k, dropped in enumerate(drop) if not dropped]
    rows = [rows[k] for k in kept]
    for label in sorted({row["label"] for row in rows}):
        (out / split / folders[label]).mkdir(parents=True)
    items = ((out / row["path"], part.image(keep[k])) for row, k in zip(rows, kept))
    md5s = write_pngs(items, workers=WRITE_WORKERS)
    for md5, row in zip(progress.bar(md5s, total=len(rows), desc=f"writing {split}", unit="img", min_total=500), rows,
                        strict=True):
        row["md5"] = md5
    return rows


def capped_indices(labels: np.ndarray, cap: int, seed: tuple[int, ...]) -> np.ndarray:
    """Indices of at most ``cap`` items per label (0 = all), a seeded choice, in ascending order."""
    if cap == 0:
        return np.arange(len(labels))
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > cap:
            members = np.random.default_rng([*seed, int(label)]).choice(members, cap, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def rare_labels(params: DataParams, class_names: tuple[str, ...]) -> list[int]:
    """The labels of ``data.long_tail.classes``; a name the source does not have is an error listing its classes."""
    unknown = [name for name in params.long_tail.classes if name not in class_names]
    if unknown:
        raise DataError(f"data.long_tail.classes names {', '.join(map(repr, unknown))}, which data.source = "
                        f"{params.source!r} does not have; its classes: {', '.join(map(repr, class_names))}")
    return sorted(class_names.index(name) for name in params.long_tail.classes)


def long_tail_indices(labels: np.ndarray, keep: np.ndarray, rare: list[int], share: float,
                      seed: tuple[int, ...]) -> np.ndarray:
    """``keep`` with each ``rare`` label's members cut to ``share`` of their number (rounded, at least
    one), a seeded choice; in ascending order."""
    kept = [keep[~np.isin(labels[keep], rare)]]
    for label in rare:
        members = keep[labels[keep] == label]
        n = max(1, round(share * len(members))) if len(members) else 0
        kept.append(np.random.default_rng([*seed, label]).choice(members, n, replace=False))
    return np.sort(np.concatenate(kept))


def long_tail_record(params: DataParams, manifest: pd.DataFrame) -> dict:
    """What the long-tail cut left: its params and the train images of every class."""
    train = manifest[manifest["split"] == "train"]
    return {"classes": list(params.long_tail.classes), "keep": params.long_tail.keep,
            "train_images": {name: int((train["class_name"] == name).sum()) for name in params.long_tail.classes}}


def _require_training_images(manifest: pd.DataFrame, class_names: tuple[str, ...], source: str) -> None:
    trained = set(manifest.loc[manifest["split"] == "train", "label"])
    missing = [name for label, name in enumerate(class_names) if label not in trained]
    if missing:
        raise DataError(f"data.source = {source!r}: no training images for class(es) {', '.join(map(repr, missing))}")


def count_table(manifest: pd.DataFrame, class_names: tuple[str, ...]) -> pd.DataFrame:
    """Images per class (rows, in label order) and split (columns), with totals."""
    table = pd.crosstab(manifest["class_name"], manifest["split"])
    table = table.reindex(index=list(class_names), columns=list(SPLITS), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table
