"""The benchmark stage on real files: a package built by the package stage, an augmented set
written by augment, small CNNs trained for a few steps."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_image_folder
from histosynth.augment import augment
from histosynth.benchmark import run_benchmark
from histosynth.benchmark.arms import BenchmarkData
from histosynth.benchmark.run import benchmark
from histosynth.classifier.architectures import small_input_resnet18
from histosynth.config import params_from_mapping
from histosynth.config.benchmark import ARMS as ALL_ARMS, DEFAULT_ARMS as ARMS, BenchmarkParams
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.package.stage import build_package
from package_inputs import AWKWARD_CLASSES, package_params, write_package_inputs

FAST = {"seeds": [0, 1], "steps": 12, "eval_every": 4, "batch_size": 16, "threads": 1,
        "bootstrap": {"resamples": 200}}
AUGMENT = params_from_mapping({}).augment
PER_SPLIT, N_SYNTHETIC, SIZE = 6, 8, 28
PROJECT = Path(__file__).resolve().parents[1]


def fast_params(**changes: object) -> BenchmarkParams:
    return BenchmarkParams.model_validate({**FAST, **changes})


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_inputs(root: Path, real_splits: tuple[str, ...] = ("train", "val", "test")) -> tuple[Path, Path]:
    """A package (awkward class names) and an augmented set made from its real train split."""
    inputs = write_package_inputs(root / "inputs", per_split=PER_SPLIT, n_synthetic=N_SYNTHETIC, size=SIZE)
    build_package(package_params(real_splits=list(real_splits)), inputs.real, inputs.synthetic, inputs.gan,
                  inputs.qa_metrics, root / "package", revision="test")
    augment(params_from_mapping({"augment": {"per_class": PER_SPLIT + 4}}).augment, inputs.real,
            root / "augmented", root / "augment_preview")
    return root / "package", root / "augmented"


@pytest.fixture(scope="module")
def pipeline_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_inputs(tmp_path_factory.mktemp("benchmark"))


@pytest.fixture(scope="module")
def outputs(pipeline_inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "benchmark"
    run_benchmark(fast_params(sweep=[3], arms=list(ALL_ARMS)), AUGMENT, *pipeline_inputs, out)
    return out


def test_every_arm_is_scored_on_the_real_test_split(outputs: Path):
    metrics = json.loads((outputs / "metrics.json").read_text())
    n_classes = len(AWKWARD_CLASSES)
    real, children, synthetic = PER_SPLIT * n_classes, 4 * n_classes, N_SYNTHETIC * n_classes
    synthetic_children = round(N_SYNTHETIC * 4 / PER_SPLIT) * n_classes  # as many children per image as the real ones
    assert {arm: metrics[arm]["n_train"] for arm in ALL_ARMS} == {
        "real_only": real, "affine": real + children, "augmented": real + synthetic,
        "affine_synthetic": real + children + synthetic + synthetic_children, "synthetic_only": synthetic,
        "strong": real, "strong_synthetic": real + synthetic, "real_weighted": real, "real_oversampled": real}
    assert metrics["n_test"] == PER_SPLIT * n_classes and metrics["seeds"] == [0, 1]
    assert metrics["classifier"] == "small_cnn"
    for arm in ALL_ARMS:
        for name in ("accuracy", "balanced_accuracy", "auc"):
            figure = metrics[arm][name]
            assert len(figure["values"]) == 2 and 0 <= figure["ci_low"] <= figure["ci_high"] <= 1
        assert list(metrics[arm]["recall"]) == list(AWKWARD_CLASSES)
    assert set(metrics["gains"]) == {"augmented_vs_real_only", "augmented_vs_affine", "affine_synthetic_vs_affine",
                                     "affine_synthetic_vs_real_only", "strong_vs_real_only", "strong_synthetic_vs_strong",
                                     "strong_synthetic_vs_real_only"}
    assert set(metrics["gains"]["augmented_vs_affine"]["auc"]) == {"mean", "ci_low", "ci_high"}


def test_plot_files_have_the_columns_dvc_plots_and_the_report_read(outputs: Path):
    for arm in ALL_ARMS:
        roc = pd.read_csv(outputs / "roc" / f"{arm}.csv", keep_default_na=False)
        assert list(roc.columns) == ["curve", "fpr", "tpr"]
        assert set(roc["curve"]) == {*AWKWARD_CLASSES, "micro"}  # names with quotes, commas and "NA" survive
        confusion = pd.read_csv(outputs / "confusion" / f"{arm}.csv", keep_default_na=False)
        assert list(confusion.columns) == ["actual", "predicted", "seed"]
        assert len(confusion) == 2 * PER_SPLIT * len(AWKWARD_CLASSES)
        assert set(confusion["actual"]) == set(AWKWARD_CLASSES) >= set(confusion["predicted"])
        history = pd.read_csv(outputs / "history" / f"{arm}.csv")
        assert list(history.columns) == ["seed", "step", "train_loss", "val_accuracy"]
        assert history.groupby("seed")["step"].apply(list).tolist() == [[4, 8, 12], [4, 8, 12]]  # equal steps


def test_the_sweep_runs_the_augmented_arm_with_fewer_synthetic_images(outputs: Path):
    metrics = json.loads((outputs / "metrics.json").read_text())
    sweep = pd.read_csv(outputs / "sweep.csv")
    assert sweep["n_synthetic_per_class"].tolist() == [0, 3, N_SYNTHETIC]
    ends = sweep.set_index("n_synthetic_per_class").loc[[0, N_SYNTHETIC], "accuracy_mean"].tolist()
    assert ends == pytest.approx([metrics["real_only"]["accuracy"]["mean"], metrics["augmented"]["accuracy"]["mean"]],
                                 abs=1e-6)


def test_dvc_plots_draws_the_roc_and_confusion_files(outputs: Path, tmp_path: Path):
    def plot(target: str, *options: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json", target, *options],
                              cwd=tmp_path, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)["data"][target][0]["content"]

    shutil.copytree(outputs, tmp_path / "reports")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    roc = plot("reports/roc/augmented.csv", "-x", "fpr", "-y", "tpr", "--template",
               str(PROJECT / ".dvc" / "plots" / "roc_curves.json"))
    assert {row["curve"] for row in roc["data"]["values"]} == {*AWKWARD_CLASSES, "micro"}
    assert roc["spec"]["encoding"]["color"]["field"] == "curve" and roc["facet"]["field"] == "filename"
    confusion = plot("reports/confusion/augmented.csv", "-x", "actual", "-y", "predicted", "--template", "confusion")
    assert len(confusion["data"]["values"]) == 2 * PER_SPLIT * len(AWKWARD_CLASSES)


@pytest.mark.slow  # two worker processes start a fresh interpreter each: about 20 s on a busy 2-core machine
def test_same_params_give_identical_outputs_whatever_the_number_of_workers(pipeline_inputs, outputs, tmp_path):
    again = tmp_path / "benchmark"
    run_benchmark(fast_params(sweep=[3], threads=2, arms=list(ALL_ARMS)), AUGMENT, *pipeline_inputs, again)
    assert files_of(again) == files_of(outputs)


def solid_colour_set(n_per_class: int, seed: int, size: int = 8) -> ImageSet:
    """Three classes that one pixel tells apart: red, green and blue tiles with a little noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.integers(0, 40, (len(labels), size, size, 3))
    images[np.arange(len(labels)), :, :, labels] += 200
    return ImageSet(images.astype(np.uint8), labels, ("red", "green", "blue"))


def test_a_perfectly_separable_set_scores_one_in_every_arm(tmp_path: Path):
    data = BenchmarkData(*(solid_colour_set(8, seed) for seed in range(6)))
    metrics = benchmark(fast_params(steps=30, lr=0.01), data, tmp_path / "out")
    for arm in ARMS:
        assert metrics[arm]["accuracy"]["values"] == [1.0, 1.0] and metrics[arm]["auc"]["mean"] == 1.0
    assert metrics["gains"]["augmented_vs_real_only"]["accuracy"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_arms_with_the_same_images_get_the_same_figures(tmp_path: Path):
    # The synthetic images are the real ones: real_only and synthetic_only then train on the same
    # data for the same steps, so the same recipe and seeds must give the same figures.
    same = solid_colour_set(4, seed=0)
    data = BenchmarkData(real_train=same, affine_children=solid_colour_set(4, seed=1), synthetic=same,
                         synthetic_children=solid_colour_set(4, seed=4), val=solid_colour_set(3, seed=2),
                         test=solid_colour_set(5, seed=3))
    metrics = benchmark(fast_params(), data, tmp_path / "out")
    assert {k: v for k, v in metrics["real_only"].items()} == metrics["synthetic_only"]
    roc = tmp_path / "out" / "roc"
    assert (roc / "real_only.csv").read_bytes() == (roc / "synthetic_only.csv").read_bytes()


def test_arms_mix_synthetic_images_by_share_and_weight_or_pretrain_on_them():
    sets = [solid_colour_set(2, seed) for seed in range(6)]
    data = BenchmarkData(*sets)
    mixed = data.arms(fast_params(synthetic_ratio=0.25, synthetic_weight=0.5))
    assert {arm: schedule.steps for arm, schedule in mixed.items()} == dict.fromkeys(ARMS, 12)
    (phase,) = mixed["augmented"].phases
    assert [(s.share, s.weight) for s in phase.streams] == [(0.75, 1.0), (0.25, 0.5)]
    assert phase.streams[1].images is data.synthetic
    (phase,) = mixed["affine_synthetic"].phases
    assert [len(s.images) for s in phase.streams] == [12, 12]  # real + affine children, synthetic + their children
    pretrain = data.arms(fast_params(mode="pretrain", pretrain_share=0.25))["augmented"]
    assert [(p.steps, p.streams[0].images is data.synthetic) for p in pretrain.phases] == [(3, True), (9, False)]


def test_synthetic_images_get_affine_children_like_the_real_ones(pipeline_inputs):
    from histosynth.benchmark.arms import load_benchmark_data

    first, second = (load_benchmark_data(*pipeline_inputs, AUGMENT) for _ in range(2))
    children = first.synthetic_children
    assert len(children) == round(N_SYNTHETIC * 4 / PER_SPLIT) * len(AWKWARD_CLASSES)
    assert np.array_equal(children.images, second.synthetic_children.images)  # seeded per image
    parents = np.concatenate([first.synthetic.images[first.synthetic.labels == c][:5] for c in range(3)])
    assert not np.array_equal(children.images, parents)


def test_a_package_without_a_val_split_is_refused(tmp_path: Path):
    package, augmented = make_inputs(tmp_path, real_splits=("train", "test"))
    with pytest.raises(DataError, match="no real val images.*package.real_splits"):
        run_benchmark(fast_params(), AUGMENT, package, augmented, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_augmented_set_of_other_classes_is_refused(pipeline_inputs, tmp_path: Path):
    other = write_image_folder(tmp_path / "other_real", {"train": 3, "val": 1, "test": 1}, ("a", "b", "c"), SIZE)
    augment(params_from_mapping({}).augment.model_copy(update={"per_class": 4}), other, tmp_path / "aug",
            tmp_path / "preview")
    with pytest.raises(DataError, match=r"aug: classes \['a', 'b', 'c'\].*differ from the package's"):
        run_benchmark(fast_params(), AUGMENT, pipeline_inputs[0], tmp_path / "aug", tmp_path / "out")


def test_an_augmented_set_made_from_other_images_is_refused(pipeline_inputs, tmp_path: Path):
    # Same classes, other real images (another seed): their children could leak or mix in data.
    other = write_image_folder(tmp_path / "other_real", {"train": 3, "val": 1, "test": 1}, AWKWARD_CLASSES, SIZE,
                               seed=5)
    augment(params_from_mapping({}).augment.model_copy(update={"per_class": 4}), other, tmp_path / "aug",
            tmp_path / "preview")
    with pytest.raises(DataError, match="not the package's real train images"):
        run_benchmark(fast_params(), AUGMENT, pipeline_inputs[0], tmp_path / "aug", tmp_path / "out")


def test_an_empty_arm_and_too_large_a_sweep_point_are_refused(tmp_path: Path):
    empty = ImageSet(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64), ("red", "green", "blue"))
    sets = [solid_colour_set(2, seed) for seed in range(6)]
    with pytest.raises(DataError, match="synthetic images are empty"):
        BenchmarkData(sets[0], sets[1], empty, sets[3], sets[4], sets[5])
    with pytest.raises(DataError, match="sweep asks for 3 synthetic images per class; the package has 2"):
        benchmark(fast_params(sweep=[3]), BenchmarkData(*sets), tmp_path / "out")


def test_the_resnet18_classifier_trains_on_small_tiles(tmp_path: Path):
    model = small_input_resnet18(3)
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    data = BenchmarkData(*(solid_colour_set(4, seed) for seed in range(6)))
    metrics = benchmark(fast_params(classifier="resnet18", seeds=[0], steps=2), data, tmp_path / "out")
    assert metrics["classifier"] == "resnet18" and len(metrics["augmented"]["auc"]["values"]) == 1


def test_the_arms_of_benchmark_arms_run_in_their_order_with_their_streams():
    real = solid_colour_set(1, 0)
    rare = ImageSet(np.concatenate([real.images, real.images[:1].repeat(3, 0)]), np.array([0, 1, 2, 0, 0, 0]),
                    real.class_names)  # 4 red, 1 green, 1 blue
    sets = [solid_colour_set(2, seed) for seed in range(6)]
    data = BenchmarkData(rare, *sets[1:])
    arms = data.arms(fast_params(arms=["real_oversampled", "strong_synthetic", "real_weighted", "strong"]))
    assert list(arms) == ["strong", "strong_synthetic", "real_weighted", "real_oversampled"]
    (strong,) = arms["strong"].phases[0].streams
    assert strong.images is rare and strong.transform is not None
    assert all(s.transform == strong.transform for s in arms["strong_synthetic"].phases[0].streams)
    (weighted,) = arms["real_weighted"].phases[0].streams
    assert weighted.class_weights == pytest.approx((0.5, 2.0, 2.0))  # N / (K n): the mean image weight stays 1
    oversampled = arms["real_oversampled"].phases[0].streams
    assert [(s.share, s.images.labels.tolist()) for s in oversampled] == [(1.0, [0, 0, 0, 0]), (1.0, [1]), (1.0, [2])]


def test_real_weighted_on_balanced_classes_is_real_only_trained_once(tmp_path: Path, caplog):
    # Equal class counts make every balancing weight 1: the same training as real_only, so it runs
    # once; with a rare class the weights differ and it trains (and scores) on its own.
    import logging

    balanced = BenchmarkData(*(solid_colour_set(4, seed) for seed in range(6)))
    params = fast_params(arms=["real_only", "real_weighted"], seeds=[0])
    with caplog.at_level(logging.INFO, logger="histosynth.benchmark.training"):
        metrics = benchmark(params, balanced, tmp_path / "balanced")
    assert "1 trainings (1 training sets x 1 seeds)" in caplog.text
    assert "real_weighted trains exactly as real_only here" in caplog.text
    assert metrics["real_weighted"] == metrics["real_only"]
    roc = tmp_path / "balanced" / "roc"
    assert (roc / "real_weighted.csv").read_bytes() == (roc / "real_only.csv").read_bytes()

    real = balanced.real_train
    rare = ImageSet(real.images[2:], real.labels[2:], real.class_names)  # 2 red, 4 green, 4 blue
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="histosynth.benchmark.training"):
        benchmark(params, BenchmarkData(rare, *(solid_colour_set(4, seed) for seed in range(1, 6))),
                  tmp_path / "rare")
    assert "2 trainings (2 training sets x 1 seeds)" in caplog.text and "trains exactly as" not in caplog.text
    history = {arm: pd.read_csv(tmp_path / "rare" / "history" / f"{arm}.csv")["train_loss"].tolist()
               for arm in ("real_only", "real_weighted")}
    assert history["real_only"] != history["real_weighted"]


def test_the_strong_arm_is_seeded_and_changes_the_training(tmp_path: Path):
    data = BenchmarkData(*(solid_colour_set(4, seed) for seed in range(6)))
    params = fast_params(arms=["real_only", "strong"], seeds=[0])
    first, second = (benchmark(params, data, tmp_path / name) for name in ("a", "b"))
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    history = {arm: pd.read_csv(tmp_path / "a" / "history" / f"{arm}.csv")["train_loss"].tolist()
               for arm in ("real_only", "strong")}
    assert history["real_only"] != history["strong"]
    assert first["strong"]["n_train"] == second["real_only"]["n_train"] == 12


def test_an_unknown_arm_is_refused_naming_the_allowed_ones():
    from histosynth.errors import ConfigError

    with pytest.raises(ConfigError, match=r"benchmark.arms = \['real_only', 'stong'\]: unknown arm\(s\) 'stong'; "
                                          r"allowed: real_only, affine, .*real_oversampled"):
        params_from_mapping({"benchmark": {"arms": ["real_only", "stong"]}})
    with pytest.raises(ConfigError, match="benchmark.arms = \\[\\]: List should have at least 1 item"):
        params_from_mapping({"benchmark": {"arms": []}})
