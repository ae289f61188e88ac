"""Affine children of images that are not on disk: the benchmark's synthetic images.

The same Rudi operations and draws as the augment stage, seeded per image, so the benchmark's
``affine_synthetic`` arm treats its synthetic images the way the ``affine`` arm treats the real ones.
"""

from __future__ import annotations

import numpy as np
import torch

from histosynth.augment.ops import apply_all
from histosynth.augment.rudi import draw_operations
from histosynth.config.augment import AugmentParams
from histosynth.dataset import ImageSet
from histosynth.image_store import StoredImages, StoreWriter

# Seed stream of these children, apart from the augment stage's plan (0) and image (1) streams.
_SYNTHETIC_CHILD_STREAM = 2


def children_per_class(originals: np.ndarray, children: np.ndarray, n_classes: int) -> np.ndarray:
    """Children per original in each class (labels of the originals and of their children)."""
    n_originals = np.bincount(originals, minlength=n_classes)
    return np.divide(np.bincount(children, minlength=n_classes), n_originals, out=np.zeros(n_classes),
                     where=n_originals > 0)


def affine_children_of(images: ImageSet, per_image: np.ndarray, params: AugmentParams) -> ImageSet:
    """``round(per_image[c] * n_c)`` children of each class c's images, parents taken in order and
    cycled; each child's operations drawn from (augment.seed, its class, its index)."""
    out_labels: list[int] = []
    height, width = images.images.shape[1:3]
    writer = StoreWriter((height, width, 3))  # the children go to an image store, one at a time
    try:
        with torch.no_grad():
            for c in range(len(images.class_names)):
                members = np.flatnonzero(images.labels == c)
                for k in range(int(round(per_image[c] * len(members))) if len(members) else 0):
                    rng = np.random.default_rng([params.seed, c, _SYNTHETIC_CHILD_STREAM, k])
                    parent = torch.from_numpy(np.ascontiguousarray(images.images[members[k % len(members)]]))
                    child = apply_all(parent.permute(2, 0, 1), draw_operations(params, rng, height, width))
                    writer.add(np.ascontiguousarray(child.permute(1, 2, 0).numpy()))
                    out_labels.append(c)
    except BaseException:
        writer.discard()
        raise
    return ImageSet(StoredImages.of(writer.finish(), (height, width, 3)), np.array(out_labels, np.int64),
                    images.class_names)
