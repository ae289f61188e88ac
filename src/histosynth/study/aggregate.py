"""The study's figures: per regime every arm's scores and the gains, with 95 % intervals.

An arm's trainings are (generator seeds x classifier seeds); an arm that uses no synthetic image
was trained once per classifier seed and stands for every generator seed. Intervals come from one
bootstrap that resamples the real test images (paired and class-stratified, as the benchmark
stage does), the classifier seeds and the generator seeds, each with replacement and the same draw
for every arm: they cover another test set, retraining the classifier and retraining the generator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from histosynth import paths
from histosynth.parallel import ordered_map
from histosynth.benchmark.bootstrap import percentile_interval, resampled_recalls, resampled_scores, stratified_counts
from histosynth.benchmark.scores import METRICS, scores
from histosynth.config import Params
from histosynth.config.benchmark import ARMS, GENERATOR_FREE_ARMS
from histosynth.errors import DataError
from histosynth.study.grid import grid, regime_folder, run_folder, shared_folder
from histosynth.study.runner import ARMS_DIR, ARMS_INFO

# (better, than): the gains reported when both arms ran; the first three are the study's questions.
GAINS = (("augmented", "real_only"), ("strong_synthetic", "strong"), ("affine_synthetic", "affine"),
         ("strong", "real_only"), ("augmented", "strong"), ("augmented", "real_weighted"),
         ("augmented", "real_oversampled"))
# the study's files name the macro AUC so; the benchmark stage's metrics.json calls it auc
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "auc": "macro_auc"}
DIGITS = 6


def _r(value: float) -> float:
    return round(float(value), DIGITS)


def interval(mean: float, samples: np.ndarray, confidence: float) -> dict[str, float]:
    low, high = percentile_interval(samples, confidence)
    return {"mean": _r(mean), "ci_low": _r(low), "ci_high": _r(high)}


def summarise(probabilities: dict[str, np.ndarray], labels: np.ndarray, class_names: Sequence[str],
              rare_classes: Sequence[str], n_train: dict[str, int], resamples: int, confidence: float,
              seed: int) -> dict[str, Any]:
    """One regime's figures. ``probabilities[arm]``: (generators, classifier seeds, test images, classes),
    with one generator for an arm that uses no synthetic image."""
    counts = stratified_counts(labels, resamples, seed)
    rng = np.random.default_rng([seed, 2])
    n_gen = max(p.shape[0] for p in probabilities.values())
    n_cls = next(iter(probabilities.values())).shape[1]
    gen_picks, cls_picks = rng.integers(0, n_gen, (n_gen, resamples)), rng.integers(0, n_cls, (n_cls, resamples))

    def resample(table: np.ndarray) -> np.ndarray:
        """(G_arm, S, B) figures -> (B,): the mean over the generator and classifier seeds each resample drew."""
        return table[(gen_picks % table.shape[0])[:, None, :], cls_picks[None, :, :], np.arange(resamples)].mean(
            axis=(0, 1))

    resampled, values, arms, recall = {}, {}, {}, {}
    rare = [class_names.index(name) for name in rare_classes]
    # the bootstrap's macro AUCs are most of a study's aggregation: every (arm, generator) on all cores
    # ... once per distinct set of probabilities (real_weighted is real_only's training on a balanced split)
    runs = [(arm, g) for arm, probs in probabilities.items() for g in range(len(probs))]
    first_of = {}
    for run in runs:
        first_of.setdefault(probabilities[run[0]][run[1]].tobytes(), run)
    distinct = list(first_of.values())
    computed = dict(zip(distinct, ordered_map(
        lambda run: resampled_scores(probabilities[run[0]][run[1]], labels, counts), distinct, chunk=1)))
    scored = {run: computed[first_of[probabilities[run[0]][run[1]].tobytes()]] for run in runs}
    for arm, probs in probabilities.items():
        per_gen = [scored[arm, g] for g in range(len(probs))]
        resampled[arm] = {name: resample(np.stack([r[name] for r in per_gen])) for name in METRICS}
        trainings = [scores(labels, p) for p in probs.reshape(-1, *probs.shape[2:])]
        values[arm] = {name: [s[name] for s in trainings] for name in METRICS}
        arms[arm] = {METRIC_NAMES[name]: {**interval(np.mean(values[arm][name]), resampled[arm][name], confidence),
                                          "std": _r(np.std(values[arm][name], ddof=1)) if len(trainings) > 1 else None}
                     for name in METRICS}
        arms[arm].update(n_train=n_train[arm], trainings=len(trainings))
        if rare:
            recalls = np.stack([resampled_recalls(p, labels, counts) for p in probs])  # (G, S, K, B)
            recall[arm] = {class_names[k]: interval(np.mean([(p[labels == k].argmax(axis=1) == k).mean()
                                                             for p in probs.reshape(-1, *probs.shape[2:])]),
                                                    resample(recalls[:, :, k]), confidence)
                           for k in rare}
    gains = {}
    for better, than in GAINS:
        if better in probabilities and than in probabilities:
            gains[f"{better}_vs_{than}"] = {
                METRIC_NAMES[name]: interval(np.mean(values[better][name]) - np.mean(values[than][name]),
                                             resampled[better][name] - resampled[than][name], confidence)
                for name in METRICS}
    return {"arms": arms, "gains": gains, "rare_class_recall": recall}


def _load_arms(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    info_path = folder / ARMS_DIR / ARMS_INFO
    if not info_path.is_file():
        raise DataError(f"{folder / ARMS_DIR}: no benchmark results; run the study (it resumes) to make them")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    return {arm: np.load(folder / ARMS_DIR / f"{arm}.npy") for arm in info["n_train"]}, info


def _qa_passed(folder: Path) -> bool | None:
    """Whether the run's synthetic images passed QA (reported, not enforced, in a study); None if unknown."""
    try:
        return bool(json.loads((folder / paths.QA_REPORT_DIR / "metrics.json").read_text(encoding="utf-8"))["passed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def study_results(params: Params, study_dir: Path) -> dict[str, Any]:
    """study.json's content from the study folder: one entry per regime (per regime and recipe,
    named ``<regime>/<recipe>``, when the study has several recipes)."""
    study, runs, bootstrap = params.study, grid(params), params.benchmark.bootstrap
    free_arms = [arm for arm in study.arms if arm in GENERATOR_FREE_ARMS]
    synthetic_arms = [arm for arm in study.arms if arm not in GENERATOR_FREE_ARMS]
    regimes: dict[str, Any] = {}
    for regime in study.regimes:
        free, free_info = _load_arms(shared_folder(study_dir, regime)) if free_arms else ({}, None)
        for recipe in study.recipes:
            probabilities = {arm: probs[None] for arm, probs in free.items() if arm in free_arms}
            infos = [free_info] if free_info else []
            if synthetic_arms:
                loaded = [_load_arms(run_folder(study_dir, run)) for run in runs
                          if run.regime == regime and run.recipe == recipe]
                probabilities |= {arm: np.stack([arms[arm] for arms, _ in loaded]) for arm in synthetic_arms}
                infos += [info for _, info in loaded]
            info = infos[0]
            if any(other["labels"] != info["labels"] or other["class_names"] != info["class_names"]
                   for other in infos):
                raise DataError(f"{regime_folder(study_dir, regime)}: the runs were tested on different test "
                                "images; the regime's folders are from different params: rerun it in a new folder")
            n_train = {arm: n for other in infos for arm, n in other["n_train"].items()}
            figures = summarise({arm: probabilities[arm] for arm in ARMS if arm in probabilities},
                                np.asarray(info["labels"]), info["class_names"], regime.long_tail.classes, n_train,
                                bootstrap.resamples, bootstrap.confidence, bootstrap.seed)
            qa = {run.name: _qa_passed(run_folder(study_dir, run)) for run in runs
                  if run.regime == regime and run.recipe == recipe}
            name = f"{regime.name}/{recipe}" if len(study.recipes) > 1 else regime.name
            regimes[name] = {"real_per_class": regime.real_per_class or None,
                             "long_tail": bool(regime.long_tail.classes), "rare_classes": list(regime.long_tail.classes),
                             "recipe": recipe, "generator_seeds": list(study.generator_seeds),
                             "classifier_seeds": info["seeds"], "n_test": len(info["labels"]), "qa_passed": qa,
                             **figures}
    return {"regimes": regimes,
            "bootstrap": {"resamples": bootstrap.resamples, "confidence": bootstrap.confidence, "seed": bootstrap.seed,
                          "method": "percentile; test images paired and class-stratified; classifier seeds and "
                                    "generator seeds drawn with replacement, the same draw for every arm"}}
