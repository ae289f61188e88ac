"""The benchmark's figures: scores, ROC curves, the paired stratified bootstrap and the metrics.json summary."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from histosynth.benchmark.bootstrap import (
    mean_over_seeds, percentile_interval, resampled_scores, seed_picks, stratified_counts, weighted_auc,
)
from histosynth.benchmark.scores import METRICS, MICRO, macro_auc, roc_curves, scores
from histosynth.benchmark.summary import GAINS, summarise
from histosynth.benchmark.training import ArmRuns, RunResult
from histosynth.config.benchmark import BootstrapParams


def noisy_probabilities(labels: np.ndarray, n_classes: int, signal: float, seed: int, decimals: int = 1) -> np.ndarray:
    """Softmax of noise plus ``signal`` on the true class; rounded logits make tied scores."""
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(size=(len(labels), n_classes)), decimals)
    logits[np.arange(len(labels)), labels] += signal
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def arm(*probabilities: np.ndarray, n_train: int = 10) -> ArmRuns:
    return ArmRuns(tuple(RunResult(p, 1, ()) for p in probabilities), n_train)


def test_scores_of_a_hand_made_case():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probabilities = np.array([[.7, .2, .1], [.6, .3, .1], [.2, .5, .3],   # third image wrong (class 1)
                              [.1, .8, .1], [.3, .4, .3], [.1, .1, .8]])
    got = scores(labels, probabilities)
    assert got["accuracy"] == pytest.approx(5 / 6)
    assert got["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    # One-vs-rest AUCs counted by hand, (positive, negative) pairs ordered right: class 0 8 of 9
    # (.2 < .3 loses), class 1 7 of 8 (.4 < .5 loses), class 2 5 of 5.
    assert got["auc"] == pytest.approx((8 / 9 + 7 / 8 + 1) / 3)


def test_binary_auc_is_scikit_learns_binary_auc():
    labels = np.array([0, 1, 0, 1, 1, 0])
    probabilities = noisy_probabilities(labels, 2, 1.0, seed=0)
    assert macro_auc(labels, probabilities) == roc_auc_score(labels, probabilities[:, 1])
    counts = stratified_counts(labels, 3, seed=0)
    (resampled,) = resampled_scores(probabilities[None], labels, counts)["auc"]
    for row, value in zip(counts, resampled):
        assert value == pytest.approx(roc_auc_score(labels, probabilities[:, 1], sample_weight=row))


def test_weighted_auc_is_scikit_learns_auc_with_sample_weights_ties_included():
    labels = np.random.default_rng(1).integers(0, 3, 80)
    probabilities = noisy_probabilities(labels, 3, 1.0, seed=2)
    counts = stratified_counts(labels, 5, seed=3)
    for k in range(3):
        got = weighted_auc(probabilities[:, k], labels == k, counts)
        for row, value in zip(counts, got):
            assert value == pytest.approx(roc_auc_score(labels == k, probabilities[:, k], sample_weight=row), abs=1e-12)


def test_a_resample_scores_each_seed_like_the_resampled_images():
    labels = np.random.default_rng(4).integers(0, 4, 60)
    seeds = np.stack([noisy_probabilities(labels, 4, 1.2, seed=s) for s in range(3)])
    counts = stratified_counts(labels, 4, seed=5)
    resampled = resampled_scores(seeds, labels, counts)
    for b, row in enumerate(counts):
        drawn = np.repeat(np.arange(len(labels)), row)
        for s, p in enumerate(seeds):
            assert {name: resampled[name][s, b] for name in METRICS} == pytest.approx(scores(labels[drawn], p[drawn]))


def test_resampling_the_seeds_averages_over_seeds_drawn_with_replacement():
    per_seed = np.array([[0.5] * 400, [0.7] * 400, [0.9] * 400])
    assert mean_over_seeds(per_seed, None) == pytest.approx(np.full(400, 0.7))
    picks = seed_picks(3, 400, seed=0)
    drawn = mean_over_seeds(per_seed, picks)
    # Means of 3 of {0.5, 0.7, 0.9} drawn with replacement: from 0.5 (all 0.5) to 0.9, centred on 0.7.
    assert drawn.min() >= 0.5 - 1e-12 and drawn.max() <= 0.9 + 1e-12 and drawn.std() > 0.05
    assert abs(drawn.mean() - 0.7) < 0.02
    assert np.array_equal(picks, seed_picks(3, 400, seed=0))


def test_resamples_keep_every_class_size_and_follow_the_seed():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 9)
    counts = stratified_counts(labels, 50, seed=7)
    for k in range(3):
        assert (counts[:, labels == k].sum(axis=1) == np.sum(labels == k)).all()
    assert counts.min() >= 0 and counts.std() > 0
    assert np.array_equal(counts, stratified_counts(labels, 50, seed=7))
    assert not np.array_equal(counts, stratified_counts(labels, 50, seed=8))


def interval_width(n_per_class: int) -> tuple[float, float, float]:
    labels = np.repeat(np.arange(3), n_per_class)
    probabilities = noisy_probabilities(labels, 3, 1.5, seed=9)
    point = scores(labels, probabilities)["accuracy"]
    (resampled,) = resampled_scores(probabilities[None], labels, stratified_counts(labels, 1000, 0))["accuracy"]
    low, high = percentile_interval(resampled, 0.95)
    return low, point, high


def test_the_interval_holds_the_point_estimate_and_narrows_with_more_test_images():
    small_low, small_point, small_high = interval_width(20)
    large_low, large_point, large_high = interval_width(500)
    assert small_low <= small_point <= small_high and large_low <= large_point <= large_high
    # The width shrinks about as 1/sqrt(n): 25 times the images, about a fifth of the width.
    assert (large_high - large_low) < 0.4 * (small_high - small_low)


def test_perfect_separation_gives_accuracy_and_auc_one_and_roc_curves_through_the_corner():
    labels = np.repeat(np.arange(3), 4)
    probabilities = np.eye(3, dtype=np.float32)[labels] * 0.9 + 0.1 / 3
    assert scores(labels, probabilities) == {"accuracy": 1.0, "balanced_accuracy": 1.0, "auc": 1.0}
    curves = roc_curves(labels, probabilities, ["a, \"quoted\"", "b", "c"])
    assert list(curves.columns) == ["curve", "fpr", "tpr"]
    assert list(curves["curve"].unique()) == ["a, \"quoted\"", "b", "c", MICRO]
    for _, curve in curves.groupby("curve"):
        assert ((curve["fpr"] == 0) & (curve["tpr"] == 1)).any()
        assert curve["fpr"].is_monotonic_increasing and curve["tpr"].is_monotonic_increasing


def names(labels: np.ndarray) -> list[str]:
    return [f"class {k}" for k in range(labels.max() + 1)]


def test_summary_of_two_arms_with_the_same_predictions_shows_no_gain():
    labels = np.repeat(np.arange(3), 10)
    same = [noisy_probabilities(labels, 3, 1.0, seed=s) for s in range(3)]
    arms = {"real_only": arm(*same), "affine": arm(*same), "augmented": arm(*same), "affine_synthetic": arm(*same),
            "synthetic_only": arm(*[noisy_probabilities(labels, 3, 0.2, seed=s) for s in range(3)]),
            "strong": arm(*same), "strong_synthetic": arm(*same)}
    summary = summarise(arms, labels, [0, 1, 2], BootstrapParams(resamples=200), "small_cnn", names(labels))
    assert summary["real_only"] == summary["affine"] == summary["augmented"] != summary["synthetic_only"]
    assert set(summary["gains"]) == {f"{better}_vs_{than}" for better, than in GAINS}
    without = summarise({k: v for k, v in arms.items() if k not in ("affine_synthetic", "strong", "strong_synthetic")},
                        labels, [0, 1, 2],
                        BootstrapParams(resamples=200), "small_cnn", names(labels))
    assert set(without["gains"]) == {"augmented_vs_real_only", "augmented_vs_affine"}  # gains of absent arms left out
    for better, than in GAINS:
        for name in METRICS:
            assert summary["gains"][f"{better}_vs_{than}"][name] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    figure = summary["real_only"]["accuracy"]
    assert figure["mean"] == pytest.approx(np.mean(figure["values"]), abs=1e-6)
    assert figure["std"] == pytest.approx(np.std(figure["values"], ddof=1), abs=1e-5)
    assert figure["ci_low"] <= figure["mean"] <= figure["ci_high"]
    assert summary["n_test"] == 30 and summary["seeds"] == [0, 1, 2] and summary["real_only"]["n_train"] == 10


def test_a_gain_is_the_difference_of_the_means_and_its_interval_excludes_zero_when_clear():
    labels = np.repeat(np.arange(3), 40)
    weak = [noisy_probabilities(labels, 3, 0.3, seed=s) for s in range(2)]
    strong = [noisy_probabilities(labels, 3, 3.0, seed=s) for s in range(2)]
    arms = {"real_only": arm(*weak), "affine": arm(*weak), "augmented": arm(*strong), "synthetic_only": arm(*weak)}
    summary = summarise(arms, labels, [0, 1], BootstrapParams(resamples=300), "small_cnn", names(labels))
    gain = summary["gains"]["augmented_vs_real_only"]["accuracy"]
    expected = summary["augmented"]["accuracy"]["mean"] - summary["real_only"]["accuracy"]["mean"]
    assert gain["mean"] == pytest.approx(expected, abs=2e-6)
    assert 0 < gain["ci_low"] <= gain["mean"] <= gain["ci_high"]


def test_one_seed_has_no_spread():
    labels = np.repeat(np.arange(2), 5)
    p = noisy_probabilities(labels, 2, 1.0, seed=0)
    arms = {name: arm(p) for name in ("real_only", "affine", "augmented", "synthetic_only")}
    summary = summarise(arms, labels, [0], BootstrapParams(resamples=100), "small_cnn", names(labels))
    assert summary["augmented"]["auc"]["std"] is None


def test_intervals_widen_when_retraining_moves_the_figures_and_seeds_are_resampled():
    labels = np.repeat(np.arange(3), 100)
    # Seeds that disagree: one strong run, two weak ones.
    disagreeing = [noisy_probabilities(labels, 3, signal, seed=s) for s, signal in enumerate((3.0, 0.5, 0.5))]
    arms = {name: arm(*disagreeing) for name in ("real_only", "affine", "augmented", "synthetic_only")}

    def width(resample_seeds: bool) -> float:
        params = BootstrapParams(resamples=500, resample_seeds=resample_seeds)
        figure = summarise(arms, labels, [0, 1, 2], params, "small_cnn", names(labels))["augmented"]["accuracy"]
        return figure["ci_high"] - figure["ci_low"]

    assert width(True) > 2 * width(False)


def test_each_class_recall_is_the_mean_over_seeds_with_an_interval_around_it():
    labels = np.repeat(np.arange(3), 20)
    perfect = np.eye(3, dtype=np.float32)[labels]
    blind_to_c = perfect.copy()
    blind_to_c[labels == 2] = np.eye(3, dtype=np.float32)[0]  # class 2 always called class 0
    half = perfect.copy()
    half[np.flatnonzero(labels == 1)[:10]] = np.eye(3, dtype=np.float32)[0]  # half of class 1 missed, one seed
    summary = summarise({"real_only": arm(perfect, half), "augmented": arm(blind_to_c, blind_to_c)}, labels, [0, 1],
                        BootstrapParams(resamples=200), "small_cnn", ["a", "b", "c"])
    assert summary["augmented"]["recall"]["c"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert summary["augmented"]["recall"]["a"]["mean"] == 1.0
    b = summary["real_only"]["recall"]["b"]
    assert b["mean"] == 0.75 and b["ci_low"] < 0.75 < b["ci_high"] <= 1.0
