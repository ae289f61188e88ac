"""The ``augment`` stage: the real train split, balanced to ``augment.per_class`` images per class."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import torch

from histosynth import progress
from histosynth.augment.ops import apply_all, describe
from histosynth.augment.plan import ClassPlan, plan_class
from histosynth.augment.preview import ClassPreview
from histosynth.augment.rudi import draw_operations
from histosynth.config.augment import AugmentParams
from histosynth.errors import DataError
from histosynth.fsutil import atomic_output_dir
from histosynth.images import encode_png, md5_file, read_png_rgb, write_pngs
from histosynth.manifest import (
    MANIFEST_NAME, SOURCE_AFFINE, SOURCE_ORIGINAL, class_names_of, read_manifest, write_manifest,
)
from histosynth.output_policy import check_outputs
from histosynth.torch_runtime import single_torch_thread

log = logging.getLogger(__name__)

SPLIT = "train"
RUN_INGEST = "run `dvc repro ingest` (or `histosynth ingest`)"
# Seed streams: one per class for its plan, one per output image, so that no image's draws
# depend on another's (nor on batching or thread counts).
_PLAN_STREAM, _IMAGE_STREAM = 0, 1


@dataclass(frozen=True)
class RealClass:
    """One class of the real train split."""

    label: int
    name: str
    folder: str  # its folder name in the real set, reused for the output
    rows: pd.DataFrame  # its rows of the real manifest
    images: "Originals"  # in the order of ``rows``


class Originals:
    """A class's train originals, each decoded as a (3, H, W) uint8 tensor when asked for: a class
    makes at most ``augment.per_class`` images, so memory stays the same however many it has."""

    def __init__(self, paths: list[Path], size: tuple[int, int]) -> None:
        self._paths = paths
        self.shape = (len(paths), 3, *size)  # size: (height, width)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        height, width = self.shape[2:]
        pixels = read_png_rgb(self._paths[int(index)], size=(width, height))  # another size: a DataError
        return torch.from_numpy(np.array(pixels.transpose(2, 0, 1), order="C"))  # a writable copy


def augment(
    params: AugmentParams,
    real_dir: Path | str,
    out_dir: Path | str,
    preview_dir: Path | str,
    workers: int | None = None,
) -> pd.DataFrame:
    """Write exactly ``params.per_class`` images per class to ``out_dir/<class folder>/``.

    Each class holds its train originals (byte-identical copies) topped up with affine
    children of them; ``out_dir/manifest.parquet`` lists every image with the operations
    applied, and ``preview_dir/<class folder>.png`` shows originals above their children.
    Both folders are replaced only when everything succeeded. ``workers`` threads encode
    PNGs (default: all cores); the output does not depend on it. Returns the manifest.
    """
    started = time.perf_counter()
    real_dir, out_dir, preview_dir = Path(real_dir), Path(out_dir), Path(preview_dir)
    check_outputs({"output folder": out_dir, "preview folder": preview_dir}, {"real images": real_dir})
    classes = read_real_train(real_dir)
    workers = workers or os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    with (
        atomic_output_dir(out_dir) as out,
        atomic_output_dir(preview_dir, "preview folder") as previews,
        # on tiles this small intra-op threads save nothing, and on a busy machine they made the
        # operations up to 50 times slower (0.2-0.4 ms vs 3-16 ms per image)
        single_torch_thread(),
        progress.bar(total=params.per_class * len(classes), unit="img", desc="augment") as bar,
    ):
        for cls in classes:
            plan = plan_class(len(cls.rows), params.per_class,
                              np.random.default_rng([params.seed, cls.label, _PLAN_STREAM]))
            _log_plan(cls, plan, params.per_class)
            (out / cls.folder).mkdir()
            preview = ClassPreview(plan, cls.images)
            rows += _copy_originals(cls, plan, real_dir, out, bar)
            rows += _write_children(cls, plan, params, out, preview, workers, bar)
            (previews / f"{cls.folder}.png").write_bytes(encode_png(preview.grid()))
        manifest = pd.DataFrame(rows)
        write_manifest(manifest, out)
    log.info("wrote %d images of %d classes to %s (previews in %s) in %.1f s",
             len(manifest), len(classes), out_dir, preview_dir, time.perf_counter() - started)
    return manifest


def read_real_train(real_dir: Path) -> list[RealClass]:
    """The train split of an ingested folder, per class; DataError if it is missing or has an empty class."""
    if not (real_dir / MANIFEST_NAME).is_file():
        raise DataError(f"{real_dir}: no ingested real images here (no {MANIFEST_NAME}); {RUN_INGEST} first")
    manifest = read_manifest(real_dir)
    names = class_names_of(manifest)
    train = manifest[manifest["split"] == SPLIT].reset_index(drop=True)
    if train.empty:
        raise DataError(f"{real_dir}: the manifest lists no '{SPLIT}' images; {RUN_INGEST} again")
    empty = [name for label, name in enumerate(names) if not (train["label"] == label).any()]
    if empty:
        raise DataError(f"{real_dir}: no '{SPLIT}' images of class(es) {', '.join(map(repr, empty))}, and every "
                        f"class needs at least one to augment; check data.source and data.max_per_class, "
                        f"then {RUN_INGEST} again")
    missing = [p for p in train["path"] if not (real_dir / p).is_file()]
    if missing:
        raise DataError(f"{real_dir}: {len(missing)} image file(s) in the manifest are missing "
                        f"(e.g. {missing[0]}); {RUN_INGEST} again")
    size = read_png_rgb(real_dir / train["path"].iloc[0]).shape[:2]
    classes = []
    for label, name in enumerate(names):
        rows = train[(train["label"] == label).to_numpy()].reset_index(drop=True)
        folder = PurePosixPath(rows["path"].iloc[0]).parent.name
        originals = Originals([real_dir / p for p in rows["path"]], size)
        classes.append(RealClass(label, name, folder, rows, originals))
    return classes


def _log_plan(cls: RealClass, plan: ClassPlan, per_class: int) -> None:
    if len(cls.rows) > per_class:
        log.warning("class %r: %d train originals, more than augment.per_class=%d: keeping a seeded subset "
                    "of %d and augmenting none", cls.name, len(cls.rows), per_class, per_class)
    else:
        log.info("class %r: %d originals + %d augmented", cls.name, len(plan.kept), len(plan.parents))


def _copy_originals(cls: RealClass, plan: ClassPlan, real_dir: Path, out: Path,
                    bar: progress.Bar) -> list[dict[str, Any]]:
    rows = []
    for index in plan.kept:
        real = cls.rows.iloc[index]
        rel = f"{cls.folder}/{PurePosixPath(real['path']).name}"
        shutil.copyfile(real_dir / real["path"], out / rel)
        md5 = md5_file(out / rel)
        if md5 != real["md5"]:
            raise DataError(f"{real_dir / real['path']}: changed since ingest (MD5 {md5}, the manifest says "
                            f"{real['md5']}); {RUN_INGEST} again")
        rows.append(_row(cls, real["id"], rel, SOURCE_ORIGINAL, md5, origin=real["id"], ops=""))
        bar.update()
    return rows


def _write_children(
    cls: RealClass,
    plan: ClassPlan,
    params: AugmentParams,
    out: Path,
    preview: ClassPreview,
    workers: int,
    bar: progress.Bar,
) -> list[dict[str, Any]]:
    """Render and write the class's augmented images; memory holds only the images in flight."""
    height, width = cls.images.shape[-2:]
    parent_ids = cls.rows["id"].tolist()
    parent_stems = [PurePosixPath(p).stem for p in cls.rows["path"]]
    children_so_far = np.zeros(len(cls.rows), dtype=np.int64)
    names = []  # (id, path) of each child, in output order
    for parent in plan.parents:
        children_so_far[parent] += 1
        suffix = f"_aug{children_so_far[parent]:03d}"
        names.append((f"{parent_ids[parent]}{suffix}", f"{cls.folder}/{parent_stems[parent]}{suffix}.png"))

    applied: list[str] = []  # the ops of each child, appended as it is handed to the writer

    def rendered() -> Iterator[tuple[Path, np.ndarray]]:
        for k, parent in enumerate(plan.parents):
            # Seeded by the image's index in its class, so it is the same whatever else is drawn.
            rng = np.random.default_rng([params.seed, cls.label, _IMAGE_STREAM, len(plan.kept) + k])
            operations = draw_operations(params, rng, height, width)
            image = apply_all(cls.images[parent], operations)
            preview.offer(int(parent), image)
            applied.append(describe(operations))
            yield out / names[k][1], np.ascontiguousarray(image.permute(1, 2, 0).numpy())

    rows = []
    # write_pngs takes image k before it yields MD5 k, so applied[k] is always there.
    for k, md5 in enumerate(write_pngs(rendered(), workers)):
        child_id, rel = names[k]
        origin = parent_ids[plan.parents[k]]
        rows.append(_row(cls, child_id, rel, SOURCE_AFFINE, md5, origin=origin, ops=applied[k]))
        bar.update()
    repeats = len(rows) - len({r["md5"] for r in rows} - set(cls.rows["md5"]))
    if repeats:
        log.info("class %r: %d of %d augmented images repeat an image of the class (no operation drawn, "
                 "or only the same flip)", cls.name, repeats, len(rows))
    return rows


def _row(cls: RealClass, image_id: str, path: str, source: str, md5: str, origin: str, ops: str) -> dict[str, Any]:
    return dict(id=image_id, path=path, class_name=cls.name, label=cls.label, split=SPLIT, source=source,
                md5=md5, origin=origin, ops=ops)

