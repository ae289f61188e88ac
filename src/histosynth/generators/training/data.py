"""Training images (in an image store, read a batch at a time), and the seeded order in which each epoch visits them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.generators.training.seeds import derive_seed
from histosynth.image_sets import open_image_set
from histosynth.images import md5_file
from histosynth.manifest import MANIFEST_NAME


def load_training_set(train_dir: Path) -> ImageSet:
    """The train split of a manifest folder (the augmented set holds nothing else), decoded into an image store."""
    images = open_image_set(train_dir, split="train")
    if len(images) == 0:
        raise DataError(f"{train_dir}: no images of the train split; run the stages before train (`dvc repro`)")
    return images


def open_holdout(holdout_dir: Path, class_names: tuple[str, ...]) -> ImageSet:
    """The real val images of ``holdout_dir`` (stored, read a batch at a time), with the training set's classes."""
    holdout = open_image_set(holdout_dir, split="val")
    if holdout.class_names != class_names:
        raise DataError(f"{holdout_dir}: classes {list(holdout.class_names)} differ from the training set's "
                        f"{list(class_names)}; rerun the pipeline from ingest")
    return holdout


def open_real_train(real_dir: Path) -> ImageSet:
    """The real train images of ``real_dir`` (stored, read a batch at a time)."""
    return open_image_set(real_dir, split="train")


def probe_subset(holdout: ImageSet, holdout_dir: Path, max_images: int, seed: int) -> ImageSet:
    """Real val images for the real-vs-fake probe: a seeded subset of at most ``max_images``, in memory."""
    if len(holdout) < 4:
        raise DataError(f"{holdout_dir}: the val split has {len(holdout)} images; the real-vs-fake probe needs at "
                        "least 4 (set gan.probe.every: 0 to switch it off)")
    keep = np.arange(len(holdout))
    if len(holdout) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(holdout), max_images, replace=False))
    return ImageSet(holdout.images[keep], holdout.labels[keep], holdout.class_names)


def manifest_md5(folder: Path) -> str:
    return md5_file(Path(folder) / MANIFEST_NAME)


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1]."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8 (the generation stage's rounding)."""
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


def epoch_batches(n_images: int, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  world_size: int = 1) -> list[torch.Tensor]:
    """Index batches of one epoch for one process.

    The order depends only on (seed, epoch), so a resumed run visits the images exactly as an
    uninterrupted one; processes take interleaved shards of one shared permutation (as
    DistributedSampler does) and all get the same number of full batches, so DDP's collective
    operations stay in step. The incomplete last batch is dropped.
    """
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch)))
    shard = order[rank::world_size][: n_images // world_size]
    n_batches = len(shard) // batch_size
    return list(shard[: n_batches * batch_size].split(batch_size))

