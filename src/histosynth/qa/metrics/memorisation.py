"""Memorisation: synthetic images that sit on top of one training image.

For every synthetic and every held-out real image (val: never trained on), the distances d1
and d2 to its two nearest *originals* among everything the generator may have learned from
(real train images and their affine children) are found, in one space (pixels or features).
An affine child counts as its parent: a copy of a rotated child is a copy of the patient's
image, and a parent and its children must not serve as each other's "second nearest". In pixel
space all eight flips and quarter turns of the query are searched too, so a flipped copy is a
copy. Pixel vectors are made from the images a block at a time (histosynth.qa.pixel_space),
never for a whole set. The gated figure is the *distance ratio* d1 / d2: a near-copy of original T is much closer
to T than to any other original, whatever the absolute scale.

Why a ratio and not d1 alone: a smooth (blurry) generator is close in L2 to *many* training
images at once, so its raw d1 falls below the held-out real images' 1st percentile although it
copies nothing, while its ratio stays near 1 like a real image's. Noisy, blurred, shifted or
brightened copies of training images all get ratios far below any real image's
(tests/test_qa_gates.py, tests/test_qa_memorisation.py). The ratio test follows Yoon et al. 2023
and Gu et al. 2023 ("memorised if d1 < d2 / 3"), with the threshold calibrated on held-out real
images instead of fixed at 1/3, which missed half of the degraded copies on the demo tiles.

An image counts as a near-copy when its ratio is at most the ``percentile``-th percentile of
the held-out ratios of the class of its nearest original (classes differ: a class of
near-identical tiles has much lower ratios than a varied one, so pooling them would flag one
class's real images far more often than another's). A class with fewer than two held-out images
uses the percentile of all of them. With few held-out images the percentile is the smallest
ratio or near it, so real images get flagged more often than the nominal rate; the gate's floor
measures exactly that rate. An exact copy has ratio 0 and is always flagged.

Edits of real images (``generate.mode: edit``) are close to their own source by design, so an
edit is judged twice (:func:`check_copies`): against every original *but* its source, with the
test above (a copy of any other training image is a copy), and against its source with a fixed,
stricter ratio: it copies its source when it is at least :data:`SOURCE_COPY_RATIO` times closer
to it than to the nearest other original (the literature's fixed "d1 < d2 / 3", or the class's
calibrated threshold where that is lower). An edit that kept its source's pixels (a strength near
0, or a verbatim copy) has a ratio near 0 and is a copy, for privacy as for any image; an edit
that changed its source about a third of the way to the next real image is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from histosynth.qa import ann
from histosynth.qa.knn import Vectors
from histosynth.qa.pixel_space import PixelVectors

# An edit copies its own source when d(edit, source) <= this x d(edit, nearest other original)
# (Yoon et al. 2023, Gu et al. 2023: "memorised if d1 < d2 / 3"); see the module docstring.
SOURCE_COPY_RATIO = 1.0 / 3.0


@dataclass(frozen=True)
class NearestOriginals:
    d1: np.ndarray  # (N,) distance to the nearest original (over all query variants)
    d2: np.ndarray  # (N,) distance to the nearest *other* original (inf when there is none)
    index: np.ndarray  # (N,) reference row of the nearest one

    @property
    def ratios(self) -> np.ndarray:
        """d1 / d2; 0 for an exact copy; 1 (undecidable) when there is no second original."""
        d1, d2 = self.d1.astype(np.float64), self.d2.astype(np.float64)
        ratio = np.divide(d1, d2, out=np.ones_like(d1), where=np.isfinite(d2) & (d2 > 0))
        ratio[d1 == 0] = 0.0
        return ratio


def nearest_originals(query_variants: Sequence[Vectors], reference: Vectors, reference_originals: np.ndarray,
                      exclude: np.ndarray | None = None, approximate: bool | None = None) -> NearestOriginals:
    """For each query (given as one or more variants of the same rows), its two nearest originals.

    ``reference_originals`` (R,) names the original of each reference row; rows of one original
    count once. Each variant is searched for enough neighbours to be sure of reaching a second
    original, then the variants' candidates are merged. ``exclude`` (N,) names an original to
    leave out per query (an edit's source; "" = none). Large searches are approximate
    (histosynth.qa.ann; ``approximate`` True or False forces one or the other).
    """
    names, codes = np.unique(reference_originals, return_inverse=True)
    codes = codes.reshape(-1)
    largest_group = int(np.bincount(codes).max()) if len(codes) else 0
    k = min(len(reference), largest_group * (2 if exclude is not None else 1) + 1)
    if k < 1:
        raise ValueError("memorisation needs at least one reference image")
    search = ann.searcher(reference, sum(len(v) for v in query_variants), approximate)
    distances, indices = zip(*(search.nearest(variant, k) for variant in query_variants))
    d, i = np.concatenate(distances, axis=1), np.concatenate(indices, axis=1)
    if exclude is not None:
        d = np.where(codes[i] == _codes_of(np.asarray(exclude, str), names)[:, None], np.inf, d)
    order = np.argsort(d, axis=1, kind="stable")
    d, i = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
    origin = codes[i]
    other = origin != origin[:, :1]
    has_other = other.any(axis=1)
    second = np.where(has_other, d[np.arange(len(d)), other.argmax(axis=1)], np.inf)
    return NearestOriginals(d[:, 0], second, i[:, 0])


def _vectors_at(vectors: Vectors, rows: np.ndarray) -> np.ndarray:
    return vectors.rows(rows) if isinstance(vectors, PixelVectors) else vectors[rows]


def _subset(vectors: Vectors, rows: np.ndarray) -> Vectors:
    return vectors.take(rows) if isinstance(vectors, PixelVectors) else vectors[rows]


def _codes_of(wanted: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Position of each wanted original in the sorted ``names``; -1 where it is not one ("" included)."""
    if len(names) == 0:
        return np.full(len(wanted), -1)
    position = np.minimum(np.searchsorted(names, wanted), len(names) - 1)
    return np.where(names[position] == wanted, position, -1)


def distances_to_originals(query_variants: Sequence[Vectors], reference: Vectors,
                           reference_originals: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N,) distance from each query (its nearest variant) to the nearest reference row of original
    ``targets[i]``; inf where that original has no reference row ("" = none)."""
    targets = np.asarray(targets, str)
    out = np.full(len(targets), np.inf)
    rows_of: dict[str, list[int]] = {}
    for row, name in enumerate(np.asarray(reference_originals, str).tolist()):
        rows_of.setdefault(name, []).append(row)
    for name in np.unique(targets):
        rows = rows_of.get(str(name))
        if not rows:
            continue
        queries = np.flatnonzero(targets == name)
        mine = _vectors_at(reference, np.asarray(rows)).astype(np.float32)
        for variant in query_variants:
            diff = _vectors_at(variant, queries).astype(np.float32)[:, None, :] - mine[None, :, :]
            out[queries] = np.minimum(out[queries], np.sqrt((diff * diff).sum(axis=2)).min(axis=1))
    return out


@dataclass(frozen=True)
class CopyCheck:
    """The memorisation verdict of each query image (see :func:`check_copies`)."""

    found: NearestOriginals  # nearest originals, an edit's own source left out
    flagged: np.ndarray  # (N,) bool: a near-copy of some original, its source included
    source_ratio: np.ndarray  # (N,) d(source) / d(nearest other original); NaN for images that are no edit
    copies_source: np.ndarray  # (N,) bool: an edit that copies its source

    @property
    def ratios(self) -> np.ndarray:
        return self.found.ratios


def check_copies(query_variants: Sequence[Vectors], reference: Vectors, reference_originals: np.ndarray,
                 reference_labels: np.ndarray, thresholds: np.ndarray,
                 sources: np.ndarray | None = None, approximate: bool | None = None) -> CopyCheck:
    """Near-copies among the queries, with ``thresholds`` per class (:func:`near_copy_thresholds`).

    ``sources`` (N,): the original each query was edited from ("" = none). An edit is flagged when it
    is a near-copy of another original, or when it copies its source: d(source) / d(nearest other
    original) at most min(:data:`SOURCE_COPY_RATIO`, the threshold of the source's class).
    ``approximate``: as :func:`nearest_originals`.
    """
    found = nearest_originals(query_variants, reference, reference_originals, exclude=sources, approximate=approximate)
    flagged = near_copies(found.ratios, reference_labels[found.index], thresholds)
    n = len(found.d1)
    source_ratio = np.full(n, np.nan)
    copies_source = np.zeros(n, bool)
    if sources is not None:
        sources = np.asarray(sources, str)
        edits = np.flatnonzero(sources != "")
        to_source = distances_to_originals([_subset(v, edits) for v in query_variants], reference, reference_originals,
                                           sources[edits])
        known = np.isfinite(to_source)
        other = found.d1[edits].astype(np.float64)
        ratio = np.divide(to_source, other, out=np.ones_like(to_source), where=np.isfinite(other) & (other > 0))
        ratio[to_source == 0] = 0.0
        source_ratio[edits[known]] = ratio[known]
        labels = _source_labels(sources[edits[known]], reference_originals, reference_labels)
        limit = np.minimum(SOURCE_COPY_RATIO, np.nan_to_num(thresholds[labels], nan=SOURCE_COPY_RATIO))
        copies_source[edits[known]] = ratio[known] <= limit
    return CopyCheck(found, flagged | copies_source, source_ratio, copies_source)


def _source_labels(sources: np.ndarray, reference_originals: np.ndarray, reference_labels: np.ndarray) -> np.ndarray:
    label_of = dict(zip(np.asarray(reference_originals, str).tolist(), np.asarray(reference_labels).tolist()))
    return np.array([label_of[s] for s in sources.tolist()], np.int64)


def near_copy_thresholds(heldout_values: np.ndarray, heldout_labels: np.ndarray, n_classes: int,
                         percentile: float = 1.0) -> np.ndarray:
    """(n_classes,) thresholds: each class's percentile, or the pooled one for a class with under two images."""
    if len(heldout_values) == 0:
        return np.full(n_classes, np.nan)
    pooled = np.percentile(heldout_values, percentile)
    return np.array([np.percentile(heldout_values[heldout_labels == k], percentile)
                     if np.sum(heldout_labels == k) >= 2 else pooled for k in range(n_classes)])


def leave_one_out_flags(heldout_values: np.ndarray, heldout_labels: np.ndarray, nearest_labels: np.ndarray,
                        n_classes: int, percentile: float = 1.0) -> np.ndarray:
    """Per held-out image: would it be flagged by thresholds computed from the *other* held-out images?

    That is how often a real image the generator never saw gets called a near-copy, at the
    calibration size actually used (the gate's floor). Image i is compared with its nearest
    original's class threshold, computed without i's own ratio when i belongs to that class.
    """
    full = near_copy_thresholds(heldout_values, heldout_labels, n_classes, percentile)
    thresholds = full[nearest_labels].astype(np.float64)
    for k in range(n_classes):
        members = np.flatnonzero(heldout_labels == k)
        if len(members) < 3:  # fewer than two would remain: the pooled threshold stands
            continue
        order = np.argsort(heldout_values[members], kind="stable")
        ranked = heldout_values[members][order]
        without = _percentile_without_each(ranked, percentile)
        own = np.empty(len(members))
        own[order] = without
        here = nearest_labels[members] == k
        thresholds[members[here]] = own[here]
    return heldout_values <= thresholds


def _percentile_without_each(ranked: np.ndarray, percentile: float) -> np.ndarray:
    """np.percentile (linear) of ``ranked`` (sorted) with element j left out, for every j at once."""
    n = len(ranked) - 1
    position = percentile / 100.0 * (n - 1)
    low = int(np.floor(position))
    fraction = position - low
    j = np.arange(len(ranked))[:, None]
    index = np.array([low, min(low + 1, n - 1)])[None, :]
    picked = ranked[index + (index >= j)]  # the remaining sequence skips position j
    return picked[:, 0] + fraction * (picked[:, 1] - picked[:, 0])


def near_copies(values: np.ndarray, nearest_labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Boolean per image: at most its nearest original's class threshold (NaN: never)."""
    return values <= thresholds[nearest_labels]
