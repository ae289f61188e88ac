"""The benchmark's arms, which differ only in their training images and how batches draw them.

- ``real_only``: the real train split.
- ``affine``: the real train split plus the affine children of ``data/augmented`` (Rudi-style
  augmentation, no GAN). The originals that ``augment`` copied are real train images already;
  counting them once keeps the comparison fair when ``augment.per_class`` kept only a subset of
  a large class's originals.
- ``augmented``: the real train split and the package's synthetic images, mixed as
  ``benchmark.mode`` says (a fixed share of every batch, or synthetic pretraining then real).
- ``affine_synthetic``: as ``augmented``, with the affine children added to the real images and
  as many affine children of the synthetic images (per image, per class) added to them: the
  question is whether synthetic images help on top of classic augmentation.
- ``synthetic_only``: the synthetic images alone.
- ``strong``: the strong conventional baseline: the real train split, every batch augmented on
  the fly (HED stain jitter, after a torchvision policy if asked: :mod:`histosynth.benchmark.strong`).
- ``strong_synthetic``: as ``augmented``, with every batch (real and synthetic images) augmented
  as in ``strong``: do synthetic images help on top of strong augmentation?
- ``real_weighted``: the real train split, each image's loss weighted by N / (K n_class): the
  long-tail baseline that makes every class count the same.
- ``real_oversampled``: the real train split, every class filling the same share of every batch
  (the rare classes' images drawn more often): the other long-tail baseline.

``benchmark.arms`` chooses which arms run.

Every arm trains for ``benchmark.steps`` steps, selects its weights on the real val split and
is tested on the real test split.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histosynth.augment.children import affine_children_of, children_per_class
from histosynth.benchmark.strong import StrongAugment
from histosynth.classifier.train import BatchTransform, Phase, Schedule, Stream
from histosynth.config.augment import AugmentParams
from histosynth.config.benchmark import ARMS, GENERATOR_FREE_ARMS, BenchmarkParams
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.image_sets import concat_sets, open_image_set, subset
from histosynth.image_store import StoredImages, write_store
from histosynth.manifest import SOURCE_ORIGINAL, SPLITS, class_names_of, read_manifest
from histosynth.package import Package, load_package

log = logging.getLogger(__name__)

__all__ = ["ARMS", "GENERATOR_FREE_ARMS", "BenchmarkData", "load_benchmark_data"]


def first_per_class(images: ImageSet, n: int) -> ImageSet:
    """The first ``n`` images of each class, in their order."""
    keep = np.zeros(len(images), bool)
    for label in range(len(images.class_names)):
        keep[np.flatnonzero(images.labels == label)[:n]] = True
    return subset(images, keep)


@dataclass(frozen=True)
class BenchmarkData:
    real_train: ImageSet
    affine_children: ImageSet
    synthetic: ImageSet
    synthetic_children: ImageSet  # affine children of the synthetic images (the affine_synthetic arm)
    val: ImageSet
    test: ImageSet

    def __post_init__(self) -> None:
        named = {"real train split": self.real_train, "affine children": self.affine_children,
                 "synthetic images": self.synthetic, "affine children of the synthetic images": self.synthetic_children,
                 "real val split": self.val, "real test split": self.test}
        for what, images in named.items():
            if images.class_names != self.test.class_names:
                raise DataError(f"the {what} have classes {list(images.class_names)} (by label), the real test "
                                f"split {list(self.test.class_names)}; build every input from the same data/real")
            if len(images) and images.image_size != self.test.image_size:
                raise DataError(f"the {what} are {images.image_size} px, the real test split "
                                f"{self.test.image_size} px; build every input at the same data.image_size")
            if len(images) == 0 and "affine children" not in what:
                raise DataError(f"the {what} are empty: the benchmark needs real train, val and test images "
                                "and synthetic images")
        missing = [name for k, name in enumerate(self.test.class_names) if not np.any(self.test.labels == k)]
        if missing:
            raise DataError(f"the real test split has no images of {missing}; every class needs test images "
                            "for per-class ROC curves and the macro AUC")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.test.class_names

    def arms(self, params: BenchmarkParams) -> dict[str, Schedule]:
        """The training schedule of each arm of ``benchmark.arms``, in :data:`ARMS` order.

        Arms that would train the same way share one schedule object (``real_weighted`` is
        ``real_only`` when every class has as many images: its weights are all 1), and
        :func:`histosynth.benchmark.training.run_all` trains a shared schedule once.
        """
        strong = StrongAugment(params.strong.hed_scale, params.strong.hed_shift, params.strong.policy)
        real_only = functools.cache(lambda: single_stream(self.real_train, params))
        makers = {
            "real_only": real_only,
            "affine": lambda: single_stream(concat_sets(self.real_train, self.affine_children), params),
            "augmented": lambda: with_synthetic(self.real_train, self.synthetic, params),
            "affine_synthetic": lambda: with_synthetic(concat_sets(self.real_train, self.affine_children),
                                                       concat_sets(self.synthetic, self.synthetic_children), params),
            "synthetic_only": lambda: single_stream(self.synthetic, params),
            "strong": lambda: single_stream(self.real_train, params, strong),
            "strong_synthetic": lambda: with_synthetic(self.real_train, self.synthetic, params, strong),
            "real_weighted": lambda: real_only() if is_balanced(self.real_train) else Schedule((Phase(
                params.steps, (Stream(self.real_train, class_weights=balancing_weights(self.real_train)),)),),
                params.eval_every),
            "real_oversampled": lambda: Schedule((Phase(params.steps, class_streams(self.real_train)),),
                                                 params.eval_every),
        }
        return {arm: makers[arm]() for arm in ARMS if arm in params.arms}

    def n_train(self) -> dict[str, int]:
        """Distinct training images per arm (every arm, whether ``benchmark.arms`` runs it or not)."""
        real, synthetic = len(self.real_train), len(self.synthetic)
        return {"real_only": real, "affine": real + len(self.affine_children), "augmented": real + synthetic,
                "affine_synthetic": real + synthetic + len(self.affine_children) + len(self.synthetic_children),
                "synthetic_only": synthetic, "strong": real, "strong_synthetic": real + synthetic,
                "real_weighted": real, "real_oversampled": real}

    def synthetic_per_class(self) -> int:
        """The fewest synthetic images any class has (the largest sweep point)."""
        return int(np.bincount(self.synthetic.labels, minlength=len(self.class_names)).min())

    def augmented_with(self, n_per_class: int, params: BenchmarkParams) -> Schedule:
        """The augmented arm with the first ``n_per_class`` synthetic images of each class.

        In package order, these are the first images that ``generate`` kept for each class.
        """
        if n_per_class > self.synthetic_per_class():
            raise DataError(f"benchmark.sweep asks for {n_per_class} synthetic images per class; the package has "
                            f"{self.synthetic_per_class()} for its smallest class (generate.n_per_class)")
        return with_synthetic(self.real_train, first_per_class(self.synthetic, n_per_class), params)


def single_stream(images: ImageSet, params: BenchmarkParams, transform: BatchTransform | None = None) -> Schedule:
    return Schedule((Phase(params.steps, (Stream(images, transform=transform),)),), params.eval_every)


def with_synthetic(real: ImageSet, synthetic: ImageSet, params: BenchmarkParams,
                   transform: BatchTransform | None = None) -> Schedule:
    """Real and synthetic images as ``benchmark.mode`` says, in ``benchmark.steps`` steps (each batch
    changed by ``transform`` when given)."""
    if params.mode == "pretrain":
        pretrain = round(params.steps * params.pretrain_share)
        return Schedule((Phase(pretrain, (Stream(synthetic, transform=transform),)),
                         Phase(params.steps - pretrain, (Stream(real, transform=transform),))), params.eval_every)
    streams = (Stream(real, 1.0 - params.synthetic_ratio, transform=transform),
               Stream(synthetic, params.synthetic_ratio, params.synthetic_weight, transform=transform))
    return Schedule((Phase(params.steps, streams),), params.eval_every)


def balancing_weights(images: ImageSet) -> tuple[float, ...]:
    """Per class N / (K n_class): every class weighs the same in the loss, the mean image weight is 1."""
    counts = np.bincount(images.labels, minlength=len(images.class_names))
    present = counts > 0
    weights = np.zeros(len(counts))
    weights[present] = len(images) / (present.sum() * counts[present])
    return tuple(float(w) for w in weights)


def is_balanced(images: ImageSet) -> bool:
    """Whether every class has the same number of images (the balancing weights are then all 1)."""
    counts = np.bincount(images.labels, minlength=len(images.class_names))
    return bool(np.all(counts == counts[0]))


def class_streams(images: ImageSet) -> tuple[Stream, ...]:
    """One stream per class with an equal share of every batch: the rare classes oversampled."""
    return tuple(Stream(subset(images, images.labels == k))
                 for k in range(len(images.class_names)) if np.any(images.labels == k))


def load_benchmark_data(package_dir: Path | str, augmented_dir: Path | str, augment: AugmentParams) -> BenchmarkData:
    """Read the package's real splits and synthetic images and the affine children of ``augmented_dir``;
    make as many affine children of the synthetic images, per image and class, with ``augment``'s operations."""
    package = load_package(package_dir)
    rows = package.metadata
    for split in SPLITS:
        if not ((rows["source"] == "real") & (rows["split"] == split)).any():
            raise DataError(f"{package_dir}: the package holds no real {split} images; the benchmark trains on "
                            "real train, selects models on real val and tests on real test (keep all three in "
                            "package.real_splits)")
    if not (rows["source"] == "synthetic").any():
        raise DataError(f"{package_dir}: the package holds no synthetic images; the augmented and synthetic_only "
                        "arms need them (generate.n_per_class)")
    log.info("reading the package %s and the affine children of %s", package_dir, augmented_dir)
    # decoded once into image stores, read a batch at a time by every training
    real_train = stored_image_set(package, "train", "real")
    children = affine_children(augmented_dir, package)
    synthetic = stored_image_set(package, None, "synthetic")
    per_image = children_per_class(real_train.labels, children.labels, len(real_train.class_names))
    return BenchmarkData(real_train=real_train, affine_children=children, synthetic=synthetic,
                         synthetic_children=affine_children_of(synthetic, per_image, augment),
                         val=stored_image_set(package, "val", "real"),
                         test=stored_image_set(package, "test", "real"))


def stored_image_set(package: Package, split: str | None, source: str | None) -> ImageSet:
    """``package.image_set(split, source)``, the images decoded once into an image store in ``TMPDIR``
    (histosynth.image_store) instead of memory, and read back a batch at a time."""
    rows = package.select(split, source)
    shape = (int(rows["height"].iloc[0]), int(rows["width"].iloc[0]), 3) if len(rows) else (0, 0, 3)
    images = (image for _, image in package.images(split, source))
    store = write_store(images, shape, len(rows)) if len(rows) else None  # a second size is a DataError
    return ImageSet(StoredImages.of(store, shape), rows["label"].to_numpy(np.int64), tuple(package.class_names))


def affine_children(augmented_dir: Path | str, package: Package) -> ImageSet:
    """The augmented images of ``augmented_dir`` (its originals left out), checked against the package.

    The folder must have the package's classes, and its originals and the parents of its
    children must be the package's real train images (same ids and MD5s): anything else would
    mix in other data, or leak val and test images into training.
    """
    manifest = read_manifest(augmented_dir)
    names = class_names_of(manifest)
    if names != package.class_names:
        raise DataError(f"{augmented_dir}: classes {names} (by label) differ from the package's "
                        f"{package.class_names}; rebuild both from the same data/real (`dvc repro`)")
    real_train = package.select(split="train", source="real")
    real_md5 = dict(zip(real_train["id"], real_train["md5"]))
    is_original = (manifest["source"] == SOURCE_ORIGINAL).to_numpy()
    originals = manifest[is_original]
    strangers = [i for i, md5 in zip(originals["id"], originals["md5"]) if real_md5.get(i) != md5]
    strangers += sorted(set(manifest.loc[~is_original, "origin"]) - set(real_md5))
    if strangers:
        raise DataError(f"{augmented_dir}: made from images that are not the package's real train images "
                        f"({len(strangers)}, e.g. {strangers[:3]}); rebuild data/augmented and data/package from "
                        "the same data/real (`dvc repro`)")
    return subset(open_image_set(augmented_dir), ~is_original)
