"""The benchmark stage on real files: a package built by the package stage, an augmented set
written by augment, small CNNs trained for a few epochs."""

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
from histosynth.benchmark.arms import ARMS, BenchmarkData
from histosynth.benchmark.run import benchmark
from histosynth.classifier.architectures import small_input_resnet18
from histosynth.config import params_from_mapping
from histosynth.config.benchmark import BenchmarkParams
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.package.stage import build_package
from package_inputs import AWKWARD_CLASSES, package_params, write_package_inputs

FAST = {"seeds": [0, 1], "epochs": 3, "batch_size": 16, "patience": 0, "threads": 1,
        "bootstrap": {"resamples": 200}}
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
    run_benchmark(fast_params(sweep=[3]), *pipeline_inputs, out)
    return out


def test_every_arm_is_scored_on_the_real_test_split(outputs: Path):
    metrics = json.loads((outputs / "metrics.json").read_text())
    n_classes = len(AWKWARD_CLASSES)
    real, children, synthetic = PER_SPLIT * n_classes, 4 * n_classes, N_SYNTHETIC * n_classes
    assert {arm: metrics[arm]["n_train"] for arm in ARMS} == {
        "real_only": real, "affine": real + children, "augmented": real + synthetic, "synthetic_only": synthetic}
    assert metrics["n_test"] == PER_SPLIT * n_classes and metrics["seeds"] == [0, 1]
    assert metrics["classifier"] == "small_cnn"
    for arm in ARMS:
        for name in ("accuracy", "balanced_accuracy", "auc"):
            figure = metrics[arm][name]
            assert len(figure["values"]) == 2 and 0 <= figure["ci_low"] <= figure["ci_high"] <= 1
    assert set(metrics["gains"]) == {"augmented_vs_real_only", "augmented_vs_affine"}
    assert set(metrics["gains"]["augmented_vs_affine"]["auc"]) == {"mean", "ci_low", "ci_high"}


def test_plot_files_have_the_columns_dvc_plots_and_the_report_read(outputs: Path):
    for arm in ARMS:
        roc = pd.read_csv(outputs / "roc" / f"{arm}.csv", keep_default_na=False)
        assert list(roc.columns) == ["curve", "fpr", "tpr"]
        assert set(roc["curve"]) == {*AWKWARD_CLASSES, "micro"}  # names with quotes, commas and "NA" survive
        confusion = pd.read_csv(outputs / "confusion" / f"{arm}.csv", keep_default_na=False)
        assert list(confusion.columns) == ["actual", "predicted", "seed"]
        assert len(confusion) == 2 * PER_SPLIT * len(AWKWARD_CLASSES)
        assert set(confusion["actual"]) == set(AWKWARD_CLASSES) >= set(confusion["predicted"])
        history = pd.read_csv(outputs / "history" / f"{arm}.csv")
        assert list(history.columns) == ["seed", "epoch", "train_loss", "val_accuracy"]
        assert history.groupby("seed")["epoch"].max().tolist() == [3, 3]


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
    run_benchmark(fast_params(sweep=[3], threads=2), *pipeline_inputs, again)
    assert files_of(again) == files_of(outputs)


def solid_colour_set(n_per_class: int, seed: int, size: int = 8) -> ImageSet:
    """Three classes that one pixel tells apart: red, green and blue tiles with a little noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.integers(0, 40, (len(labels), size, size, 3))
    images[np.arange(len(labels)), :, :, labels] += 200
    return ImageSet(images.astype(np.uint8), labels, ("red", "green", "blue"))


def test_a_perfectly_separable_set_scores_one_in_every_arm(tmp_path: Path):
    data = BenchmarkData(*(solid_colour_set(8, seed) for seed in range(5)))
    metrics = benchmark(fast_params(epochs=8, lr=0.01), data, tmp_path / "out")
    for arm in ARMS:
        assert metrics[arm]["accuracy"]["values"] == [1.0, 1.0] and metrics[arm]["auc"]["mean"] == 1.0
    assert metrics["gains"]["augmented_vs_real_only"]["accuracy"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_arms_with_the_same_images_get_the_same_figures(tmp_path: Path):
    # The affine children and the synthetic images are the same images: the affine and augmented
    # arms then train on the same data, so the same recipe and seeds must give the same figures.
    extra = solid_colour_set(4, seed=1)
    data = BenchmarkData(real_train=solid_colour_set(4, seed=0), affine_children=extra, synthetic=extra,
                         val=solid_colour_set(3, seed=2), test=solid_colour_set(5, seed=3))
    metrics = benchmark(fast_params(epochs=2), data, tmp_path / "out")
    assert metrics["affine"] == metrics["augmented"]
    assert metrics["gains"]["augmented_vs_affine"]["auc"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    roc = tmp_path / "out" / "roc"
    assert (roc / "affine.csv").read_bytes() == (roc / "augmented.csv").read_bytes()


def test_a_package_without_a_val_split_is_refused(tmp_path: Path):
    package, augmented = make_inputs(tmp_path, real_splits=("train", "test"))
    with pytest.raises(DataError, match="no real val images.*package.real_splits"):
        run_benchmark(fast_params(), package, augmented, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_augmented_set_of_other_classes_is_refused(pipeline_inputs, tmp_path: Path):
    other = write_image_folder(tmp_path / "other_real", {"train": 3, "val": 1, "test": 1}, ("a", "b", "c"), SIZE)
    augment(params_from_mapping({}).augment.model_copy(update={"per_class": 4}), other, tmp_path / "aug",
            tmp_path / "preview")
    with pytest.raises(DataError, match=r"aug: classes \['a', 'b', 'c'\].*differ from the package's"):
        run_benchmark(fast_params(), pipeline_inputs[0], tmp_path / "aug", tmp_path / "out")


def test_an_augmented_set_made_from_other_images_is_refused(pipeline_inputs, tmp_path: Path):
    # Same classes, other real images (another seed): their children could leak or mix in data.
    other = write_image_folder(tmp_path / "other_real", {"train": 3, "val": 1, "test": 1}, AWKWARD_CLASSES, SIZE,
                               seed=5)
    augment(params_from_mapping({}).augment.model_copy(update={"per_class": 4}), other, tmp_path / "aug",
            tmp_path / "preview")
    with pytest.raises(DataError, match="not the package's real train images"):
        run_benchmark(fast_params(), pipeline_inputs[0], tmp_path / "aug", tmp_path / "out")


def test_an_empty_arm_and_too_large_a_sweep_point_are_refused(tmp_path: Path):
    empty = ImageSet(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64), ("red", "green", "blue"))
    sets = [solid_colour_set(2, seed) for seed in range(5)]
    with pytest.raises(DataError, match="synthetic images are empty"):
        BenchmarkData(sets[0], sets[1], empty, sets[3], sets[4])
    with pytest.raises(DataError, match="sweep asks for 3 synthetic images per class; the package has 2"):
        benchmark(fast_params(sweep=[3]), BenchmarkData(*sets), tmp_path / "out")


def test_the_resnet18_classifier_trains_on_small_tiles(tmp_path: Path):
    model = small_input_resnet18(3)
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    data = BenchmarkData(*(solid_colour_set(4, seed) for seed in range(5)))
    metrics = benchmark(fast_params(classifier="resnet18", seeds=[0], epochs=1), data, tmp_path / "out")
    assert metrics["classifier"] == "resnet18" and len(metrics["augmented"]["auc"]["values"]) == 1
