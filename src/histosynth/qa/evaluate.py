"""Per-class QA figures, each beside its real-vs-real floor.

Every function here takes the loaded images (and their features, computed once), applies
one metric per class with reproducible draws from ``qa.seed``, and returns
``{label: {key: value}}``; floors are stored under ``<key>_real_floor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from histosynth.config.qa import QaParams
from histosynth.qa.inputs import QaInputs
from histosynth.qa.knn import nearest
from histosynth.qa.metrics import PAIR_METRICS, duplicates, fid, label_agreement, memorisation
from histosynth.qa.metrics.colour_kl import CHANNELS, colour_histograms, smoothed_distribution
from histosynth.qa.sampling import class_rng, draw

PerClass = dict[int, dict[str, Any]]


@dataclass(frozen=True)
class FeatureSpace:
    """One feature space's vectors of the real train, real test and synthetic images."""

    train: np.ndarray
    test: np.ndarray
    synthetic: np.ndarray


def checked_labels(inputs: QaInputs) -> list[int]:
    """The classes that have synthetic images (the others are not checked)."""
    return sorted(set(inputs.synthetic.images.labels.tolist()))


def _of(labels: np.ndarray, c: int) -> np.ndarray:
    return np.flatnonzero(labels == c)


def with_floor(metric: str, real: np.ndarray, candidate: np.ndarray, floor_real: np.ndarray,
               floor_candidate: np.ndarray, **options: Any) -> dict[str, float]:
    """``PAIR_METRICS[metric]`` of (real, candidate), and of the real pair under ``<key>_real_floor``."""
    compute = PAIR_METRICS[metric]
    value, floor = compute(real, candidate, **options), compute(floor_real, floor_candidate, **options)
    return {**value, **{f"{k}_real_floor": v for k, v in floor.items()}}


def colour_kl_by_class(inputs: QaInputs, params: QaParams) -> tuple[PerClass, list[dict[str, Any]]]:
    """KL of colour histograms: a real half vs synthetic, and vs the other real half (the floor).

    The real images are the class's train split, the distribution the generator learns (other
    splits may come from other regions or patients). Per class, m = min(qa.kl.n_per_class,
    train/2, synthetic) images are drawn for each of real half A, real half B (disjoint) and
    synthetic. Also returns the histogram overlay rows (class, channel, bin, real, synthetic).
    """
    real, real_labels = inputs.train.images.images, inputs.train.images.labels
    synthetic = inputs.synthetic.images
    out: PerClass = {}
    rows: list[dict[str, Any]] = []
    opts = {"bins": params.kl.bins, "smoothing": params.kl.smoothing}
    for c in checked_labels(inputs):
        pool, candidates = real[_of(real_labels, c)], synthetic.images[_of(synthetic.labels, c)]
        m = min(params.kl.n_per_class, len(pool) // 2, len(candidates))
        rng = class_rng(params.seed, c, "kl")
        order = rng.permutation(len(pool))
        half_a, half_b = pool[np.sort(order[:m])], pool[np.sort(order[m : 2 * m])]
        sample = candidates[draw(len(candidates), m, rng)]
        out[c] = {**with_floor("colour_kl", half_a, sample, half_a, half_b, **opts), "kl_images": m}
        if m:
            p = smoothed_distribution(colour_histograms(half_a, params.kl.bins), params.kl.smoothing)
            q = smoothed_distribution(colour_histograms(sample, params.kl.bins), params.kl.smoothing)
            rows += [{"class": inputs.class_names[c], "channel": CHANNELS[ch], "bin": b,
                      "real": float(p[ch, b]), "synthetic": float(q[ch, b])}
                     for ch in range(3) for b in range(params.kl.bins)]
    return out, rows


def fid_by_class(inputs: QaInputs, space: FeatureSpace, seed: int,
                 key: str = "fid") -> tuple[PerClass, dict[str, float]]:
    """FID(real test, synthetic) per class and overall, beside the floor FID(real train, real test).

    FID's bias grows as samples shrink, so synthetic and train images are compared with the
    test images at one sample size m = min(train, synthetic): the larger side is drawn down
    to m, FID_DRAWS times, and its FIDs averaged (which also steadies the estimate).
    """
    train_y, test_y, syn_y = inputs.train.images.labels, inputs.test.images.labels, inputs.synthetic.images.labels
    out: PerClass = {}
    for c in checked_labels(inputs):
        value, floor = _size_matched_fid(space.train[_of(train_y, c)], space.test[_of(test_y, c)],
                                         space.synthetic[_of(syn_y, c)], class_rng(seed, c, key))
        out[c] = {key: value, f"{key}_real_floor": floor}
    return out, overall_fid(space, seed, key)


def overall_fid(space: FeatureSpace, seed: int, key: str = "fid") -> dict[str, float]:
    """FID(real test, synthetic) over all classes, beside FID(real train, real test), size-matched."""
    value, floor = _size_matched_fid(space.train, space.test, space.synthetic, class_rng(seed, None, key))
    return {key: value, f"{key}_real_floor": floor}


FID_DRAWS = 5


def _size_matched_fid(train: np.ndarray, test: np.ndarray, synthetic: np.ndarray,
                      rng: np.random.Generator) -> tuple[float, float]:
    """(mean FID(test, synthetic draw), mean FID(train draw, test)), draws of m = min(train, synthetic)."""
    m = min(len(train), len(synthetic))

    def mean_fid(candidates: np.ndarray) -> float:
        draws = 1 if m == len(candidates) else FID_DRAWS
        return float(np.mean([fid.frechet_distance(test, candidates[draw(len(candidates), m, rng)])
                              for _ in range(draws)]))

    return mean_fid(synthetic), mean_fid(train)


def prdc_by_class(inputs: QaInputs, space: FeatureSpace, params: QaParams) -> PerClass:
    """P/R/D/C of synthetic vs real train, on equal-sized draws; floor: real test vs real train.

    Coverage and recall depend on the ratio of the two sample sizes, so both comparisons use
    as many candidates as reference images (the floor with the smaller test split).
    """
    train_y, test_y = inputs.train.images.labels, inputs.test.images.labels
    syn_y = inputs.synthetic.images.labels
    out: PerClass = {}
    for c in checked_labels(inputs):
        train_c, rng = space.train[_of(train_y, c)], class_rng(params.seed, c, "prdc")
        reference, candidate = _equal_size_draws(train_c, space.synthetic[_of(syn_y, c)], rng)
        floor_reference, floor_candidate = _equal_size_draws(train_c, space.test[_of(test_y, c)], rng)
        out[c] = with_floor("prdc", reference, candidate, floor_reference, floor_candidate, k=params.diversity.k)
    return out


def _equal_size_draws(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = min(len(a), len(b))
    return a[draw(len(a), m, rng)], b[draw(len(b), m, rng)]


def label_agreement_by_class(inputs: QaInputs, test_predictions: np.ndarray,
                             synthetic_predictions: np.ndarray) -> PerClass:
    """Share of synthetic images classified as their class; floor: the net's recall on real test."""
    test_y, syn_y = inputs.test.images.labels, inputs.synthetic.images.labels
    out: PerClass = {}
    for c in checked_labels(inputs):
        value = label_agreement.compute(synthetic_predictions[_of(syn_y, c)], c)
        floor = label_agreement.compute(test_predictions[_of(test_y, c)], c)
        out[c] = {**value, "label_agreement_real_floor": floor["label_agreement"]}
    return out


def duplicates_by_class(inputs: QaInputs) -> PerClass:
    """Exact duplicates among a class's synthetic images, and exact copies of training images."""
    syn_hashes = duplicates.pixel_md5s(inputs.synthetic.images.images)
    train_hashes = set(duplicates.pixel_md5s(inputs.train.images.images))
    syn_y = inputs.synthetic.images.labels
    out: PerClass = {}
    for c in checked_labels(inputs):
        hashes = [syn_hashes[i] for i in _of(syn_y, c)]
        out[c] = {**duplicates.compute(hashes), "exact_train_copies": sum(h in train_hashes for h in hashes)}
    return out


def pixel_vectors(images: np.ndarray) -> np.ndarray:
    """Images as vectors scaled so that Euclidean distance is the RMS pixel difference in 0..1."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    return flat / np.float32(255.0 * np.sqrt(flat.shape[1]))


def memorisation_by_class(inputs: QaInputs, space: FeatureSpace, heldout_features: np.ndarray,
                          params: QaParams) -> tuple[PerClass, list[dict[str, Any]]]:
    """Near-copy shares (distance-ratio test, see qa.metrics.memorisation) in pixel and feature
    space, plus a per-image distance table.

    The held-out reference is real val + test (``heldout_features`` in that order).
    Nearest training images are searched among all classes: a copy under the wrong label
    still leaks.
    """
    heldout = [inputs.val, inputs.test]
    heldout_images = np.concatenate([s.images.images for s in heldout])
    heldout_y = np.concatenate([s.images.labels for s in heldout])
    heldout_ids = np.concatenate([s.ids for s in heldout])
    spaces = {
        "pixel": (pixel_vectors(inputs.train.images.images), pixel_vectors(heldout_images),
                  pixel_vectors(inputs.synthetic.images.images)),
        "feature": (space.train, heldout_features, space.synthetic),
    }
    train_y, syn_y = inputs.train.images.labels, inputs.synthetic.images.labels
    n_classes = len(inputs.class_names)
    out: PerClass = {c: {} for c in checked_labels(inputs)}
    columns: dict[str, dict[str, np.ndarray]] = {"synthetic": {}, "real_heldout": {}}
    percentile = params.memorisation.percentile
    for name, (train, held, syn) in spaces.items():
        held_d, held_i = nearest(held, train, k=2)
        syn_d, syn_i = nearest(syn, train, k=2)
        held_r, syn_r = memorisation.distance_ratios(held_d), memorisation.distance_ratios(syn_d)
        nearest_y = train_y[syn_i[:, 0]]
        ratio_thresholds = memorisation.near_copy_thresholds(held_r, heldout_y, n_classes, percentile)
        flagged = memorisation.near_copies(syn_r, nearest_y, ratio_thresholds)
        distance_thresholds = memorisation.near_copy_thresholds(held_d[:, 0], heldout_y, n_classes, percentile)
        closer = memorisation.near_copies(syn_d[:, 0], nearest_y, distance_thresholds)
        for c in out:
            mine = _of(syn_y, c)
            out[c].update({
                f"memorised_share_{name}": float(flagged[mine].mean()) if len(held_d) else float("nan"),
                f"near_copy_ratio_threshold_{name}": float(ratio_thresholds[c]),
                f"closer_than_heldout_share_{name}": float(closer[mine].mean()) if len(held_d) else float("nan"),
                f"near_copy_distance_threshold_{name}": float(distance_thresholds[c]),
                f"median_nearest_train_{name}_synthetic": float(np.median(syn_d[mine, 0])),
                f"median_nearest_train_{name}_real_heldout": _median(held_d[_of(heldout_y, c), 0]),
            })
        for source, d, r, i in (("synthetic", syn_d, syn_r, syn_i), ("real_heldout", held_d, held_r, held_i)):
            columns[source].update({f"{name}_distance": d[:, 0], f"{name}_ratio": r,
                                    f"nearest_train_id_{name}": inputs.train.ids[i[:, 0]]})
    rows = []
    for source, labels, ids in (("synthetic", syn_y, inputs.synthetic.ids), ("real_heldout", heldout_y, heldout_ids)):
        table = {"class": [inputs.class_names[y] for y in labels], "source": [source] * len(ids), "id": ids,
                 **columns[source]}
        rows += [dict(zip(table, values)) for values in zip(*table.values())]
    return out, rows


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else float("nan")
