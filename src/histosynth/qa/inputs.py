"""Loading what QA compares: real train and val, the affine children, and a synthetic set.

QA never reads the real test split: it stays untouched for the benchmark. Val images that ingest
found to copy a train image (the manifest's ``duplicate_of``) are left out: they are not held out,
and would make a memorisation floor think copying is normal. The synthetic set
is a folder with a manifest (as the generate stage writes it) or, for sets made outside the
pipeline, plain class folders of images named like the real class folders (or like the class
names). Synthetic labels are mapped to the real labels by class name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from histosynth.dataset import ImageSet
from histosynth.image_store import StoredImages, concat, decode_into_store
from histosynth.errors import DataError
from histosynth.images import USER_IMAGE_FORMATS, read_png_rgb
from histosynth.manifest import EDIT_OF, MANIFEST_NAME, SOURCE_AFFINE, class_names_of, read_manifest
from histosynth.neutralise import for_terminal
from histosynth.qa.sampling import class_rng, draw

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
QA_SPLITS = ("train", "val")


@dataclass(frozen=True)
class LabelledImages:
    images: ImageSet
    ids: np.ndarray  # (N,) str, the manifest ids (or file paths for plain folders)
    # (N,) str: the real train image each one was made from: itself for real images, the source
    # of an edit for synthetic ones ("" for samples). What "the same original" means for memorisation.
    originals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class QaInputs:
    class_names: tuple[str, ...]  # the real class names, in label order
    train: LabelledImages
    val: LabelledImages
    affine: LabelledImages  # affine children of train images (empty without data/augmented)
    synthetic: LabelledImages  # labels in the real label space

    @property
    def image_size(self) -> int:
        return self.train.images.image_size

    def generator_training_set(self) -> LabelledImages:
        """Everything the generator may have learned from: real train plus the affine children."""
        if len(self.affine) == 0:
            return self.train
        return LabelledImages(
            ImageSet(concat([self.train.images.images, self.affine.images.images]),
                     np.concatenate([self.train.images.labels, self.affine.images.labels]), self.class_names),
            np.concatenate([self.train.ids, self.affine.ids]),
            np.concatenate([self.train.ids, self.affine.originals]))


def load_qa_inputs(real_dir: Path, synthetic_dir: Path, max_per_class: int, seed: int,
                   augmented_dir: Path | None = None) -> QaInputs:
    """Real train/val, the affine children of ``augmented_dir`` (when given and present), and up to
    ``max_per_class`` synthetic images per class (drawn with ``seed``)."""
    real_dir, synthetic_dir = Path(real_dir), Path(synthetic_dir)
    real = read_manifest(real_dir)
    names = tuple(class_names_of(real))
    splits = {s: _read(real_dir, held_out(real, s), names) for s in QA_SPLITS}
    if len(splits["train"]) == 0:
        raise DataError(f"{real_dir}: the real train split is empty")
    if len(splits["val"]) == 0:
        raise DataError(f"{real_dir}: the real val split is empty; QA compares synthetic images with real val "
                        "images (data.val_fraction, or a source with a val split)")
    affine = _affine_children(augmented_dir, real, names)

    rows = _synthetic_rows(synthetic_dir, real, names)
    picked = [rows.index[rows["label"] == c][draw(int((rows["label"] == c).sum()), max_per_class,
                                                   class_rng(seed, c, "synthetic"))]
              for c in range(len(names))]
    chosen = rows.loc[np.concatenate(picked)]
    synthetic = _with_sources(_read(synthetic_dir, chosen, names), chosen, real)
    sizes = {s.images.images.shape[1:3] for s in (*splits.values(), affine, synthetic) if len(s)}
    if len(sizes) > 1:
        raise DataError(f"real ({real_dir}) and synthetic ({synthetic_dir}) images differ in size: "
                        f"{sorted(sizes)}; QA compares images of one size")
    missing = [n for c, n in enumerate(names) if not np.any(synthetic.images.labels == c)]
    if missing:
        log.warning("no synthetic images for class(es) %s: they are not checked", ", ".join(missing))
    train = splits["train"]
    return QaInputs(names, LabelledImages(train.images, train.ids, train.ids), splits["val"], affine, synthetic)


def _with_sources(synthetic: LabelledImages, rows: pd.DataFrame, real: pd.DataFrame) -> LabelledImages:
    """The synthetic images with ``originals`` set to the real train image each edit was made from ("" = none)."""
    sources = rows["edit_of"].to_numpy(str)
    train_ids = set(real.loc[real["split"] == "train", "id"])
    unknown = sorted(set(sources[sources != ""]) - train_ids)
    if unknown:
        raise DataError(f"edits of images that are not real train images here ({', '.join(unknown[:3])}); "
                        "regenerate them from this data/real (`dvc repro generate`)")
    return LabelledImages(synthetic.images, synthetic.ids, sources)


def _affine_children(augmented_dir: Path | None, real: pd.DataFrame, names: tuple[str, ...]) -> LabelledImages:
    if augmented_dir is None or not (Path(augmented_dir) / MANIFEST_NAME).is_file():
        return _empty(names)
    augmented_dir = Path(augmented_dir)
    manifest = read_manifest(augmented_dir)
    if tuple(class_names_of(manifest)) != names:
        raise DataError(f"{augmented_dir}: classes {class_names_of(manifest)} differ from the real ones "
                        f"{list(names)}; rebuild it from the same data/real (`dvc repro augment`)")
    children = manifest[manifest["source"] == SOURCE_AFFINE]
    unknown = sorted(set(children["origin"]) - set(real.loc[real["split"] == "train", "id"]))
    if unknown:
        raise DataError(f"{augmented_dir}: children of images that are not real train images ({unknown[:3]}); "
                        "rebuild it from the same data/real (`dvc repro augment`)")
    read = _read(augmented_dir, children.assign(label=children["label"].astype(np.int64)), names)
    return LabelledImages(read.images, read.ids, children["origin"].to_numpy(str))


def _empty(names: tuple[str, ...]) -> LabelledImages:
    return LabelledImages(ImageSet(np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64), names),
                          np.zeros(0, str), np.zeros(0, str))


def _synthetic_rows(folder: Path, real: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Rows (id, path, label) of the synthetic set, labels mapped to ``names`` by class name."""
    if not folder.is_dir():
        raise DataError(f"{folder}: synthetic image folder not found; run the generate stage "
                        "(`dvc repro generate`) or pass the folder of your own images")
    if (folder / MANIFEST_NAME).is_file():
        manifest = read_manifest(folder)
        rows = manifest[["id", "path", "class_name"]].assign(
            edit_of=manifest[EDIT_OF].fillna("").astype(str) if EDIT_OF in manifest else "")
    else:
        rows = _rows_from_class_folders(folder, real)
    unknown = sorted(set(rows["class_name"]) - set(names))
    if unknown:
        raise DataError(f"{folder}: synthetic classes {unknown} are not among the real classes {list(names)}")
    if rows.empty:
        raise DataError(f"{folder}: no synthetic images found")
    label_of = {n: c for c, n in enumerate(names)}
    return rows.assign(label=rows["class_name"].map(label_of)).reset_index(drop=True)


def _rows_from_class_folders(folder: Path, real: pd.DataFrame) -> pd.DataFrame:
    """A plain ``<class folder>/<image>`` tree; class folders named as in data/real or as the class."""
    class_of_folder = {PurePosixPath(p).parent.name: n for p, n in zip(real["path"], real["class_name"])}
    class_of_folder.update({n: n for n in real["class_name"]})
    rows = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in class_of_folder:
            raise DataError(f"{sub}: folder name matches no real class (expected one of "
                            f"{sorted(set(class_of_folder))})")
        for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            rel = path.relative_to(folder).as_posix()
            rows.append({"id": rel, "path": rel, "class_name": class_of_folder[sub.name], "edit_of": ""})
    return pd.DataFrame(rows, columns=["id", "path", "class_name", "edit_of"])


def held_out(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``split``; for val and test, without the images that copy a train image."""
    rows = manifest[manifest["split"] == split]
    if split == "train" or "duplicate_of" not in rows:
        return rows
    copies = rows["duplicate_of"].fillna("").astype(str) != ""
    if copies.any():
        log.info("QA leaves out %d %s image(s) that copy a train image (data.duplicates; reports/ingest)",
                 int(copies.sum()), split)
    return rows[~copies]


def _read(folder: Path, rows: pd.DataFrame, names: tuple[str, ...]) -> LabelledImages:
    """The images of ``rows``, decoded once into an image store (read a batch at a time from there)."""
    labels = rows["label"].to_numpy(np.int64)
    paths = [folder / p for p in rows["path"]]
    # a set made elsewhere may hold other formats; images of different sizes are a DataError naming one
    store = decode_into_store(paths, partial(read_png_rgb, formats=USER_IMAGE_FORMATS),
                              desc=f"reading {for_terminal(folder.name)}")
    images = StoredImages.of(store) if store is not None else np.zeros((0, 1, 1, 3), np.uint8)
    return LabelledImages(ImageSet(images, labels, names), rows["id"].to_numpy(str))
