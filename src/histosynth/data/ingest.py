"""The ``ingest`` stage: ``data.source`` -> ``<out>/{train,val,test}/<class folder>/<id>.png`` + manifest.

Images are written as RGB PNGs of ``data.image_size`` pixels (deterministic bytes), one folder
per class named by :func:`histosynth.fsutil.unique_safe_names` (the original class names stay
in the manifest). ``data.max_per_class`` caps the train split and ``data.max_eval_per_class``
the val and test splits, per class, by a choice seeded with ``(data.seed, split, label)``
that keeps the source's order. The whole output folder appears at once when everything has
been written, or not at all.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from histosynth.config.data import DataParams
from histosynth.data.source_images import SourceImages
from histosynth.data.sources import load_source
from histosynth.errors import DataError
from histosynth.fsutil import atomic_output_dir, unique_safe_names
from histosynth.images import write_pngs
from histosynth.manifest import SPLITS, write_manifest

log = logging.getLogger(__name__)

SOURCE_LABEL = "real"  # manifest `source` column: these are the real images
CAP_STREAM = 2  # keeps the caps' generator apart from other seeded choices made from data.seed
WRITE_WORKERS = min(8, os.cpu_count() or 1)


def ingest(params: DataParams, out_dir: Path | str) -> pd.DataFrame:
    """Read ``params.source`` and write it under ``out_dir``; return the manifest."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    source = load_source(params)
    folders = unique_safe_names(source.class_names)
    with atomic_output_dir(out_dir) as tmp:
        rows: list[dict] = []
        for split in SPLITS:
            rows.extend(_write_split(source, split, folders, params, tmp))
        manifest = pd.DataFrame(rows, columns=["id", "path", "class_name", "label", "split", "source", "md5",
                                               "origin"]).astype({"label": "int64"})
        _require_training_images(manifest, source.class_names, params.source)
        write_manifest(manifest, tmp)
    log.info("images per class and split:\n%s", count_table(manifest, source.class_names).to_string())
    log.info("ingest: wrote %d images of %d px from %s to %s in %.1f s", len(manifest), params.image_size,
             params.source, out_dir, time.perf_counter() - started)
    return manifest


def _write_split(source: SourceImages, split: str, folders: list[str], params: DataParams,
                 out: Path) -> list[dict]:
    """Write one split's (capped) images; the split's data is released when this returns."""
    part = source.read_split(split)
    cap = params.max_per_class if split == "train" else params.max_eval_per_class
    keep = capped_indices(part.labels, cap, (params.seed, CAP_STREAM, SPLITS.index(split)))
    rows = [
        dict(id=part.ids[i], path=f"{split}/{folders[label]}/{part.ids[i]}.png", class_name=source.class_names[label],
             label=label, split=split, source=SOURCE_LABEL, origin=part.origins[i])
        for i, label in zip(keep.tolist(), part.labels[keep].tolist())
    ]
    for label in sorted({row["label"] for row in rows}):
        (out / split / folders[label]).mkdir(parents=True)
    items = ((out / row["path"], part.image(i)) for row, i in zip(rows, keep.tolist()))
    md5s = write_pngs(items, workers=WRITE_WORKERS)
    progress = tqdm(md5s, total=len(rows), desc=f"writing {split}", unit="img", disable=len(rows) < 500)
    for md5, row in zip(progress, rows, strict=True):
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
