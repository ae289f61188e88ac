"""Per-image scores of synthetic candidates, and what real images score on the same scales.

- confidence: the cross-fitted classifiers' mean probability of the class the image was made
  for (an edit of a real image: the probability under the one classifier that never saw it);
  real reference: each real train image's out-of-fold probability of its own class.
- realism: the k-NN realism score of Kynkaanniemi et al. (2019) in each cross-fitted model's
  feature space, against the train images that model never saw: max_i r_i / |x - y_i| over
  reference images y_i with k-NN radius r_i (the half with the largest radii pruned, as the
  authors do); >= 1 means inside some real image's neighbourhood. Real reference: each of those
  images scored against the others.
- near-copy ratio: nearest / second-nearest distance to an original among real train images and
  their affine children, in pixels, flips and turns included, and in the feature space of QA's
  feature net (histosynth.qa.metrics.memorisation: QA's two memorisation tests); real reference:
  the val images' ratios. An edit's own source is left out of its ratio and tested with QA's
  own-source rule instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from histosynth.classifier.embed import Embedding, embed
from histosynth.image_store import Images
from histosynth.qa.knn import Vectors, nearest
from histosynth.qa.pixel_space import PixelVectors, variants
from histosynth.qa.metrics import memorisation
from histosynth.torch_runtime import single_torch_thread


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def embed_all(models: list[nn.Module], images: Images) -> list[Embedding]:
    """Each model's features and logits of ``images``, on one torch thread (same bits on any machine)."""
    with single_torch_thread():
        return [embed(model, images) for model in models]


def confidence(embeddings: list[Embedding], labels: np.ndarray, source_folds: np.ndarray | None = None) -> np.ndarray:
    """Mean probability, over the models, of each image's intended class; ``source_folds`` (-1 = none):
    an edit's is that of the one model that never saw its source (as the real images' out-of-fold
    reference is)."""
    each = np.stack([softmax(e.logits) for e in embeddings])
    probabilities = each.mean(axis=0)
    if source_folds is not None:
        edits = np.flatnonzero(source_folds >= 0)
        probabilities[edits] = each[source_folds[edits], edits]
    return probabilities[np.arange(len(labels)), labels]


@dataclass(frozen=True)
class RealismReference:
    """One feature space's real neighbourhoods: pruned reference vectors and their k-NN radii."""

    vectors: np.ndarray
    radii: np.ndarray
    rows: np.ndarray  # which rows of the real set were kept

    @classmethod
    def of(cls, real: np.ndarray, k: int) -> "RealismReference":
        radii = _kth_distance(real, k)
        rows = np.flatnonzero(radii <= np.median(radii))
        return cls(real[rows], radii[rows], rows)

    def real_scores(self, real: np.ndarray) -> np.ndarray:
        """The realism of each image of the real set this was built from, against the others."""
        own = np.full(len(real), -1)
        own[self.rows] = np.arange(len(self.rows))
        return self.scores(real, exclude=own)

    def scores(self, query: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Realism of each query row; ``exclude[i]``: the reference row that is query i itself (-1: none)."""
        if len(self.vectors) == 0 or len(query) == 0:
            return np.zeros(len(query))
        k = min(len(self.vectors), 64)
        distances, indices = nearest(query, self.vectors, k=k)
        if exclude is not None:
            distances = np.where(indices == exclude[:, None], np.inf, distances)
        with np.errstate(divide="ignore"):
            ratios = self.radii[indices] / distances
        return ratios.max(axis=1)


def _kth_distance(vectors: np.ndarray, k: int) -> np.ndarray:
    if len(vectors) <= k:
        return np.full(len(vectors), np.inf)
    return nearest(vectors, vectors, k=k, exclude_self=True)[0][:, k - 1]


@dataclass(frozen=True)
class CopyReference:
    """Everything the generator may have learned from, in one of QA's two spaces (pixels with every flip
    and turn of a query, or QA's feature net's features), and the near-copy thresholds per class."""

    vectors: Vectors
    queries: Callable[[Images], Sequence[Vectors]]  # a set of images -> its query variants in this space
    originals: np.ndarray
    labels: np.ndarray
    thresholds: np.ndarray

    @classmethod
    def in_pixels(cls, images: Images, originals: np.ndarray, labels: np.ndarray, heldout: Images,
                  heldout_labels: np.ndarray, n_classes: int, percentile: float) -> "CopyReference":
        # pixel vectors are made a block at a time when searched
        return cls._calibrated(PixelVectors(images), variants, originals, labels, heldout, heldout_labels, n_classes,
                               percentile)

    @classmethod
    def in_features(cls, model: nn.Module, images: Images, originals: np.ndarray, labels: np.ndarray,
                    heldout: Images, heldout_labels: np.ndarray, n_classes: int, percentile: float) -> "CopyReference":
        def queries(x: Images) -> list[np.ndarray]:
            return [embed_all([model], x)[0].features]

        return cls._calibrated(queries(images)[0], queries, originals, labels, heldout, heldout_labels, n_classes,
                               percentile)

    @classmethod
    def _calibrated(cls, vectors: Vectors, queries: Callable[[Images], Sequence[Vectors]], originals: np.ndarray,
                    labels: np.ndarray, heldout: Images, heldout_labels: np.ndarray, n_classes: int,
                    percentile: float) -> "CopyReference":
        held = memorisation.nearest_originals(queries(heldout), vectors, originals)
        thresholds = memorisation.near_copy_thresholds(held.ratios, heldout_labels, n_classes, percentile)
        return cls(vectors, queries, originals, labels, thresholds)

    def ratios(self, images: np.ndarray, sources: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(near-copy ratio, flagged) of each image; ``sources``: the original each edit was made from
        ("" = none), left out of its ratio and tested with the own-source rule (qa.metrics.memorisation)."""
        check = memorisation.check_copies(self.queries(images), self.vectors, self.originals, self.labels,
                                          self.thresholds, sources)
        return check.ratios, check.flagged
