"""Per-class QA figures, each beside its real-vs-real floor and that floor's spread.

Every function here takes the images (in memory or in image stores, read a batch at a time) and
their features (computed once), applies one
metric per class with reproducible draws from ``qa.seed``, and returns ``{label: {key: value}}``.
Drawn figures are computed ``qa.draws`` times; the value is their mean and the floor is
summarised by histosynth.qa.floors (``<key>_real_floor``, ``_sd``, ``_q_low``, ``_q_high``).

Each metric of histosynth.qa.registry has one computation here, registered with ``computes``: a
function of the :class:`QaContext` returning :class:`MetricFigures`. Which real images each figure
compares with:
- colour KL: the real train split (pixel histograms involve no learned model);
- FID, coverage: halves of the real val split, in the space of a feature net that never trained
  on val, so neither the value nor the floor is measured on the net's own training images;
- label agreement: the cross-fitted classifiers' out-of-fold recall on real train is the floor;
- memorisation: nearest originals among real train and its affine children, calibrated on val.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from histosynth.config.qa import QaParams
from histosynth.image_store import Images, batches
from histosynth.qa.floors import mean_of_draws, summarise_floor
from histosynth.qa.inputs import QaInputs
from histosynth.qa.metrics import duplicates, fid, label_agreement, memorisation, prdc
from histosynth.qa.metrics.colour_kl import CHANNELS, kl_of_counts, per_image_histograms, smoothed_distribution
from histosynth.qa.pixel_space import PixelVectors, pixel_vectors, variants  # noqa: F401 - pixel_vectors: re-exported
from histosynth.qa.registry import computes
from histosynth.qa.sampling import class_rng, draw, stratified_halves

PerClass = dict[int, dict[str, Any]]
# Pixel values (H x W x 3) read at once by the per-image figures: their histograms index with 8
# bytes per value, the duplicate hashes make 8 turned copies.
BATCH_VALUES = 1 << 20


def _batch_size(images: Images) -> int:
    return max(1, BATCH_VALUES // max(int(np.prod(images.shape[1:])), 1))


@dataclass(frozen=True)
class FeatureSpace:
    """One feature space's vectors of the real train, real val, affine children and synthetic images."""

    train: np.ndarray
    val: np.ndarray
    affine: np.ndarray
    synthetic: np.ndarray


@dataclass(frozen=True)
class QaContext:
    """What the metrics read: the images, their domain features, the feature net's predictions, ``qa.*``."""

    inputs: QaInputs
    params: QaParams
    domain: FeatureSpace
    out_of_fold_predictions: np.ndarray  # the cross-fitted classifiers' prediction of each real train image
    val_predictions: np.ndarray
    synthetic_predictions: np.ndarray  # edits: by the fold classifier that never saw their source


@dataclass(frozen=True)
class MetricFigures:
    by_class: PerClass
    overall: dict[str, float] = field(default_factory=dict)  # figures over all classes (the overall FID)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # rows of the report's tables


def checked_labels(inputs: QaInputs) -> list[int]:
    """The classes that have synthetic images (the others are not checked)."""
    return sorted(set(inputs.synthetic.images.labels.tolist()))


def _of(labels: np.ndarray, c: int) -> np.ndarray:
    return np.flatnonzero(labels == c)


def colour_kl_by_class(inputs: QaInputs, params: QaParams) -> tuple[PerClass, list[dict[str, Any]]]:
    """KL of colour histograms: real train vs synthetic, and real train vs other real train images.

    Per class and draw, m = min(qa.kl.n_per_class, train/2, synthetic) images are drawn for each
    of real set A, real set B (disjoint from A) and synthetic S; the value averages KL(A || S)
    over draws, the floor is the distribution of KL(A || B). Also returns the histogram overlay
    rows (class, channel, bin, real, synthetic) of all the class's train and synthetic images.
    """
    bins, smoothing = params.kl.bins, params.kl.smoothing
    real_counts = _histograms(inputs.train.images.images, bins)
    syn_counts = _histograms(inputs.synthetic.images.images, bins)
    real_y, syn_y = inputs.train.images.labels, inputs.synthetic.images.labels
    out: PerClass = {}
    rows: list[dict[str, Any]] = []
    for c in checked_labels(inputs):
        pool, candidates = real_counts[_of(real_y, c)], syn_counts[_of(syn_y, c)]
        m = min(params.kl.n_per_class, len(pool) // 2, len(candidates))
        rng = class_rng(params.seed, c, "kl")
        values, floors = [], []
        for _ in range(params.draws if m else 0):
            order = rng.permutation(len(pool))
            half_a, half_b = pool[order[:m]].sum(0), pool[order[m : 2 * m]].sum(0)
            values.append(kl_of_counts(half_a, candidates[draw(len(candidates), m, rng)].sum(0), smoothing))
            floors.append(kl_of_counts(half_a, half_b, smoothing)["kl"])
        out[c] = {**{key: mean_of_draws(np.array([v[key] for v in values]))
                     for key in ("kl", *(f"kl_{ch}" for ch in CHANNELS))},
                  **summarise_floor("kl", np.array(floors), params.floor_quantile), "kl_images": m}
        if len(pool) and len(candidates):
            p = smoothed_distribution(pool.sum(0), smoothing)
            q = smoothed_distribution(candidates.sum(0), smoothing)
            rows += [{"class": inputs.class_names[c], "channel": CHANNELS[ch], "bin": b,
                      "real": float(p[ch, b]), "synthetic": float(q[ch, b])}
                     for ch in range(3) for b in range(bins)]
    return out, rows


def _histograms(images: Images, bins: int) -> np.ndarray:
    """:func:`per_image_histograms` of ``images``, a batch at a time."""
    out = np.zeros((len(images), 3, bins), np.int64)
    for start, batch in batches(images, _batch_size(images)):
        out[start : start + len(batch)] = per_image_histograms(batch, bins)
    return out


def feature_figures_by_class(inputs: QaInputs, space: FeatureSpace, params: QaParams) -> PerClass:
    """FID and precision/recall/density/coverage per class, against halves of the real val split.

    Per class and draw the val images are split into disjoint halves A and B of h images each
    and h synthetic images S are drawn: FID(A, S) and coverage(A, S) are the values, FID(A, B) and
    coverage(A, B) the floor. Equal sizes everywhere, because both FID's bias and coverage depend
    on the sample sizes.
    """
    val_y, syn_y = inputs.val.images.labels, inputs.synthetic.images.labels
    out: PerClass = {}
    for c in checked_labels(inputs):
        held, candidates = space.val[_of(val_y, c)], space.synthetic[_of(syn_y, c)]
        rng = class_rng(params.seed, c, "feature")
        h = min(len(held) // 2, len(candidates))
        drawn: dict[str, list[float]] = {}
        for _ in range(params.draws if h >= 2 else 0):
            order = rng.permutation(len(held))
            a, b = held[order[:h]], held[order[h : 2 * h]]
            s = candidates[draw(len(candidates), h, rng)]
            for key, value in (("fid", fid.frechet_distance(a, s)), ("fid_floor", fid.frechet_distance(a, b))):
                drawn.setdefault(key, []).append(value)
            for key, value in prdc.compute(a, s, k=params.diversity.k).items():
                drawn.setdefault(key, []).append(value)
            drawn.setdefault("coverage_floor", []).append(prdc.compute(a, b, k=params.diversity.k)["coverage"])
        figures: dict[str, Any] = {key: mean_of_draws(np.array(drawn.get(key, [])))
                                   for key in ("fid", *prdc.KEYS)}
        figures |= summarise_floor("fid", np.array(drawn.get("fid_floor", [])), params.floor_quantile)
        figures |= summarise_floor("coverage", np.array(drawn.get("coverage_floor", [])), params.floor_quantile)
        out[c] = figures | {"feature_images": h}
    return out


def overall_fid(val: np.ndarray, val_labels: np.ndarray, synthetic: np.ndarray, seed: int, draws: int,
                key: str = "fid") -> dict[str, float]:
    """FID over all classes: val half A vs as many synthetic images, beside val half A vs half B."""
    rng = class_rng(seed, None, key)
    values, floors = [], []
    for _ in range(draws):
        a, b = stratified_halves(val_labels, rng)
        h = min(len(a), len(synthetic))
        if h < 2:
            break
        values.append(fid.frechet_distance(val[a], synthetic[draw(len(synthetic), len(a), rng)]))
        floors.append(fid.frechet_distance(val[a], val[b]))
    floor = np.array(floors, np.float64)
    return {key: mean_of_draws(np.array(values)), f"{key}_real_floor": mean_of_draws(floor),
            f"{key}_real_floor_sd": float(floor.std(ddof=1)) if len(floor) > 1 else float("nan")}


def label_agreement_by_class(inputs: QaInputs, out_of_fold_predictions: np.ndarray, val_predictions: np.ndarray,
                             synthetic_predictions: np.ndarray, params: QaParams) -> PerClass:
    """Share of synthetic images classified as their class by the feature net; floor: the out-of-fold
    recall of the cross-fitted classifiers on the class's real train images (the distribution the
    generator learns), with its spread from ``qa.draws`` bootstrap resamples. The feature net's
    recall on real val is reported beside it."""
    train_y, val_y, syn_y = inputs.train.images.labels, inputs.val.images.labels, inputs.synthetic.images.labels
    out: PerClass = {}
    for c in checked_labels(inputs):
        hits = (out_of_fold_predictions[_of(train_y, c)] == c).astype(np.float64)
        rng = class_rng(params.seed, c, "label")
        resampled = (np.array([hits[rng.integers(0, len(hits), len(hits))].mean() for _ in range(params.draws)])
                     if len(hits) else np.array([]))
        floor = summarise_floor("label_agreement", resampled, params.floor_quantile)
        floor["label_agreement_real_floor"] = float(hits.mean()) if len(hits) else float("nan")
        val_hits = val_predictions[_of(val_y, c)] == c
        out[c] = {**label_agreement.compute(synthetic_predictions[_of(syn_y, c)], c), **floor,
                  "label_agreement_val_recall": float(val_hits.mean()) if len(val_hits) else float("nan")}
    return out


def duplicates_by_class(inputs: QaInputs) -> PerClass:
    """Duplicates among a class's synthetic images and copies of training images, flips and turns included."""
    syn_hashes = _orientation_free_md5s(inputs.synthetic.images.images)
    trained_on = inputs.generator_training_set()
    train_hashes = set(_orientation_free_md5s(trained_on.images.images))
    syn_y = inputs.synthetic.images.labels
    out: PerClass = {}
    for c in checked_labels(inputs):
        hashes = [syn_hashes[i] for i in _of(syn_y, c)]
        out[c] = {**duplicates.compute(hashes), "exact_train_copies": sum(h in train_hashes for h in hashes)}
    return out


def _orientation_free_md5s(images: Images) -> list[str]:
    return [h for _, batch in batches(images, _batch_size(images)) for h in duplicates.orientation_free_md5s(batch)]


def memorisation_by_class(inputs: QaInputs, space: FeatureSpace,
                          params: QaParams) -> tuple[PerClass, list[dict[str, Any]]]:
    """Near-copy shares (distance-ratio test, see qa.metrics.memorisation) in pixel and feature
    space, each beside the share of held-out real images flagged, plus a per-image distance table.
    An edit is compared with the originals other than its source, and with its source by the
    stricter own-source test (``source_copy_share_*``; the table's ``*_source_ratio``).

    The reference is everything the generator may have learned from: real train and its affine
    children, a child counting as its original. Nearest originals are searched among all classes:
    a copy under the wrong label still leaks. The floor: the share of val images flagged by
    thresholds computed without them, bootstrapped ``qa.draws`` times.
    """
    trained_on = inputs.generator_training_set()
    ref_y, val_y, syn_y = trained_on.images.labels, inputs.val.images.labels, inputs.synthetic.images.labels
    n_classes = len(inputs.class_names)
    percentile = params.memorisation.percentile
    spaces = {
        "pixel": (PixelVectors(trained_on.images.images), variants(inputs.val.images.images),
                  variants(inputs.synthetic.images.images)),
        "feature": (np.concatenate([space.train, space.affine]), [space.val], [space.synthetic]),
    }
    sources = inputs.synthetic.originals
    edits = sources if sources is not None and np.any(sources != "") else None
    out: PerClass = {c: {} for c in checked_labels(inputs)}
    columns: dict[str, dict[str, Any]] = {"synthetic": {}, "real_heldout": {}}
    for name, (reference, held, syn) in spaces.items():
        held_n = memorisation.nearest_originals(held, reference, trained_on.originals)
        held_r = held_n.ratios
        thresholds = memorisation.near_copy_thresholds(held_r, val_y, n_classes, percentile)
        check = memorisation.check_copies(syn, reference, trained_on.originals, ref_y, thresholds, edits)
        syn_n, syn_r, flagged = check.found, check.ratios, check.flagged
        floor_draws = _heldout_shares(held_r, val_y, ref_y[held_n.index], n_classes, params, name)
        distance_thresholds = memorisation.near_copy_thresholds(held_n.d1, val_y, n_classes, percentile)
        closer = memorisation.near_copies(syn_n.d1, ref_y[syn_n.index], distance_thresholds)
        for c in out:
            mine = _of(syn_y, c)
            out[c].update({
                f"memorised_share_{name}": float(flagged[mine].mean()),
                **summarise_floor(f"memorised_share_{name}", floor_draws[c], params.floor_quantile),
                f"near_copy_ratio_threshold_{name}": float(thresholds[c]),
                f"closer_than_heldout_share_{name}": float(closer[mine].mean()),
                f"near_copy_distance_threshold_{name}": float(distance_thresholds[c]),
                f"median_nearest_train_{name}_synthetic": float(np.median(syn_n.d1[mine])),
                f"median_nearest_train_{name}_real_heldout": _median(held_n.d1[_of(val_y, c)]),
            })
            if edits is not None:  # edits that copy their own source (counted in memorised_share too)
                out[c][f"source_copy_share_{name}"] = float(check.copies_source[mine].mean())
        for source, found, ratios in (("synthetic", syn_n, syn_r), ("real_heldout", held_n, held_r)):
            columns[source].update({f"{name}_distance": found.d1, f"{name}_ratio": ratios,
                                    f"nearest_train_id_{name}": trained_on.ids[found.index]})
        if edits is not None:
            columns["synthetic"][f"{name}_source_ratio"] = check.source_ratio
            columns["real_heldout"][f"{name}_source_ratio"] = np.full(len(held_r), np.nan)
    if edits is not None:
        columns["synthetic"]["edit_of"] = edits
        columns["real_heldout"]["edit_of"] = np.full(len(inputs.val.ids), "")
    rows = []
    for source, labels, ids in (("synthetic", syn_y, inputs.synthetic.ids), ("real_heldout", val_y, inputs.val.ids)):
        table = {"class": [inputs.class_names[y] for y in labels], "source": [source] * len(ids), "id": ids,
                 **columns[source]}
        rows += [dict(zip(table, values)) for values in zip(*table.values())]
    return out, rows


def _heldout_shares(ratios: np.ndarray, labels: np.ndarray, nearest_labels: np.ndarray, n_classes: int,
                    params: QaParams, space: str) -> dict[int, np.ndarray]:
    """Per class, ``qa.draws`` bootstrap resamples of the share of held-out images flagged by
    thresholds computed without them (leave one out)."""
    flags = memorisation.leave_one_out_flags(ratios, labels, nearest_labels, n_classes,
                                             params.memorisation.percentile).astype(np.float64)
    rng = class_rng(params.seed, None, f"memorisation floor {space}")
    shares = {}
    for c in range(n_classes):
        mine = flags[labels == c]
        shares[c] = (np.array([mine[rng.integers(0, len(mine), len(mine))].mean() for _ in range(params.draws)])
                     if len(mine) else np.array([]))
    return shares


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else float("nan")


@computes("colour_kl")
def _colour_kl(context: QaContext) -> MetricFigures:
    by_class, rows = colour_kl_by_class(context.inputs, context.params)
    return MetricFigures(by_class, tables={"histograms": rows})


@computes("feature_figures")
def _feature_figures(context: QaContext) -> MetricFigures:
    inputs, domain, params = context.inputs, context.domain, context.params
    return MetricFigures(feature_figures_by_class(inputs, domain, params),
                         overall=overall_fid(domain.val, inputs.val.images.labels, domain.synthetic, params.seed,
                                             params.draws))


@computes("label_agreement")
def _label_agreement(context: QaContext) -> MetricFigures:
    return MetricFigures(label_agreement_by_class(context.inputs, context.out_of_fold_predictions,
                                                  context.val_predictions, context.synthetic_predictions,
                                                  context.params))


@computes("duplicates")
def _duplicates(context: QaContext) -> MetricFigures:
    return MetricFigures(duplicates_by_class(context.inputs))


@computes("memorisation")
def _memorisation(context: QaContext) -> MetricFigures:
    by_class, rows = memorisation_by_class(context.inputs, context.domain, context.params)
    return MetricFigures(by_class, tables={"memorisation": rows})
