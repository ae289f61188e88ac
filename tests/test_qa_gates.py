"""The QA gates on held-out real images and on deliberately broken synthetic sets.

A real folder of textured tiles trains the feature net once per module; every synthetic set
is written the way the generate stage writes one (class folders, MD5SUMS, manifest) and runs
through the same `run_qa` as the DVC stage, with the default thresholds.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from conftest import TINY_CLASSES, textured_image, write_image_folder
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.classifier import ClassifierRecipe
from histosynth.dataset import load_image_set
from histosynth.entry import EXIT_GATE
from histosynth.errors import ConfigError, DataError
from histosynth.fsutil import unique_safe_names
from histosynth.generate.md5sums import write_md5sums
from histosynth.images import encode_png, md5_bytes
from histosynth.manifest import write_manifest
from histosynth.qa.gates import GATES, QaGateFailed
from histosynth.qa.run import run_qa

N_SYNTHETIC = 60
ALL_GATES = {g.name for g in GATES}
REPORT_ONLY = params_from_mapping({"qa": {"enforce": False}}).qa


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    real = write_image_folder(root / "real", {"train": 60, "val": 20, "test": 40})
    train_featurenet(ClassifierRecipe(epochs=8, patience=3), real, root / "featurenet")
    return root


def fresh_images(label, n, seed):
    rng = np.random.default_rng(seed)
    return [textured_image(label, 32, rng) for _ in range(n)]


def write_synthetic(folder: Path, images_by_label: dict[int, list[np.ndarray]]) -> Path:
    """``<class folder>/<id>.png`` with MD5SUMS per folder and a manifest, as the generate stage writes."""
    rows = []
    for label, (name, sub) in enumerate(zip(TINY_CLASSES, unique_safe_names(TINY_CLASSES))):
        (folder / sub).mkdir(parents=True)
        sums = []
        for i, image in enumerate(images_by_label[label]):
            data, image_id = encode_png(image), f"syn_{sub}_{i:06d}"
            (folder / sub / f"{image_id}.png").write_bytes(data)
            sums.append((f"{image_id}.png", md5_bytes(data)))
            rows.append(dict(id=image_id, path=f"{sub}/{image_id}.png", class_name=name, label=label,
                             split="train", source="synthetic", md5=sums[-1][1], origin="test"))
        write_md5sums(folder / sub, sums)
    write_manifest(pd.DataFrame(rows), folder)
    return folder


def train_images(work, label):
    train = load_image_set(work / "real", "train")
    return list(train.of_class(label))


def degraded(images, how, seed=0):
    """Copies that no longer match byte for byte: with Gaussian noise (sd 8) or blurred (sigma 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for im in images:
        x = im.astype(np.float64)
        x = x + rng.normal(0, 8, x.shape) if how == "noise" else gaussian_filter(x, sigma=(1, 1, 0))
        out.append(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    return out


BROKEN_SETS = {
    # name: (images per class, gates that must fail for every class, gates that must pass for every class)
    "uniform_noise": (
        lambda work, c: list(np.random.default_rng(c).integers(0, 256, (N_SYNTHETIC, 32, 32, 3), dtype=np.uint8)),
        {"colour_kl", "fid", "coverage"}, {"duplicates", "memorisation_pixel", "memorisation_feature"}),
    "one_image_repeated": (
        lambda work, c: fresh_images(c, 1, seed=100 + c) * N_SYNTHETIC,
        {"duplicates", "coverage"}, {"label_consistency", "memorisation_pixel", "memorisation_feature"}),
    "train_copies": (
        lambda work, c: train_images(work, c),
        {"memorisation_pixel", "memorisation_feature"},
        {"colour_kl", "fid", "label_consistency", "coverage", "duplicates"}),
    # Near-copies: a generator that memorised its training images but renders them with noise
    # (blurred and shifted copies: tests/test_qa_memorisation.py, on real tissue).
    "train_copies_noisy": (
        lambda work, c: degraded(train_images(work, c), "noise", seed=c),
        {"memorisation_pixel"}, {"duplicates", "label_consistency"}),
    # A blurry generator copies nothing although its images are close (in L2) to many training
    # images at once: the distance-ratio test must not call that memorisation.
    "blurry_fresh_images": (
        lambda work, c: degraded(fresh_images(c, N_SYNTHETIC, seed=400 + c), "blur"),
        set(), {"duplicates", "memorisation_pixel", "memorisation_feature"}),
    "label_swap": (
        lambda work, c: fresh_images((c + 1) % 3, N_SYNTHETIC, seed=200 + c),
        {"label_consistency"}, {"duplicates", "memorisation_pixel", "memorisation_feature"}),
    "colour_shift": (
        lambda work, c: [np.clip(im.astype(np.int16) + (30, 0, -30), 0, 255).astype(np.uint8)
                         for im in fresh_images(c, N_SYNTHETIC, seed=300 + c)],
        {"colour_kl"}, {"duplicates", "memorisation_pixel", "memorisation_feature"}),
}


def outcome(result):
    """{gate name: set of per-class outcomes (True passed, False failed, None not evaluated)}."""
    out = {}
    for r in result.gates:
        out.setdefault(r.gate.name, set()).add(r.passed)
    return out


def test_held_out_real_images_pass_every_gate(work):
    synthetic = write_image_folder(work / "held_out", {"train": N_SYNTHETIC}, seed=7, source="synthetic")
    result = run_qa(REPORT_ONLY, work / "real", synthetic, work / "featurenet", work / "qa_held_out")
    assert outcome(result) == {gate: {True} for gate in ALL_GATES}
    assert result.passed and result.metrics["passed"] is True
    for figures in result.metrics["classes"].values():  # comfortably, not by a hair
        assert figures["kl"] < 0.5 * 0.05
        assert figures["fid"] < 2.0 * figures["fid_real_floor"]


@pytest.mark.parametrize("name", sorted(BROKEN_SETS))
def test_each_broken_set_fails_its_gate_and_not_the_unrelated_ones(work, name):
    make, must_fail, must_pass = BROKEN_SETS[name]
    synthetic = write_synthetic(work / name, {c: make(work, c) for c in range(3)})
    result = run_qa(REPORT_ONLY, work / "real", synthetic, work / "featurenet", work / f"qa_{name}")
    gates = outcome(result)
    if must_fail:
        assert not result.passed
    for gate in must_fail:
        assert gates[gate] == {False}, f"{gate} should fail for every class: {gates[gate]}"
    for gate in must_pass:
        assert gates[gate] == {True}, f"{gate} should pass for every class: {gates[gate]}"


def test_enforce_writes_everything_then_fails_with_the_verdict_table(work):
    synthetic = write_synthetic(work / "noise_enforced", {c: BROKEN_SETS["uniform_noise"][0](work, c) for c in range(3)})
    report = work / "qa_enforced"
    with pytest.raises(QaGateFailed) as err:
        run_qa(params_from_mapping({"qa": {"enforce": True}}).qa, work / "real", synthetic, work / "featurenet", report)
    message = str(err.value)
    assert "QA gates failed for 3 class(es)" in message
    header, *rows = message.splitlines()[1:]
    assert header.split() == ["class", "gate", "value", "threshold", "floor", "from"]
    kl_rows = [r for r in rows if " colour_kl " in r]
    assert len(kl_rows) == 3 and all("<= 0.05" in r and "qa.kl.max" in r for r in kl_rows)
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["passed"] is False and metrics["failed_gates"] == len(rows)
    assert all((report / f).is_file() for f in ("histograms.csv", "memorisation.csv"))


def test_report_files_are_complete_and_deterministic(work):
    synthetic = write_image_folder(work / "held_out_2", {"train": 30}, seed=11, source="synthetic")
    first, second = work / "qa_det_1", work / "qa_det_2"
    for out in (first, second):
        run_qa(REPORT_ONLY, work / "real", synthetic, work / "featurenet", out)
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert files == ["histograms.csv", "histograms/blue_noise.csv", "histograms/green_stripes.csv",
                                       "histograms/red_blobs.csv", "memorisation.csv", "metrics.json"]
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f

    metrics = json.loads((first / "metrics.json").read_text())
    assert set(metrics) >= {"passed", "classes", "fid", "featurenet", "counts"}
    assert set(metrics["classes"]) == set(TINY_CLASSES)
    figures = metrics["classes"]["red blobs"]
    for key in ("kl", "kl_real_floor", "fid", "fid_real_floor", "label_agreement", "label_agreement_real_floor",
                "precision", "recall", "density", "coverage", "coverage_real_floor", "duplicates",
                "memorised_share_pixel", "memorised_share_feature", "exact_train_copies"):
        assert isinstance(figures[key], (int, float)), key
    assert set(figures["gates"]) == ALL_GATES and figures["n_synthetic"] == 30
    assert set(metrics["fid"]) == {"fid", "fid_real_floor"}

    histograms = pd.read_csv(first / "histograms.csv")
    assert list(histograms.columns) == ["class", "channel", "bin", "real", "synthetic"]
    assert len(histograms) == 3 * 3 * REPORT_ONLY.kl.bins
    sums = histograms.groupby(["class", "channel"])[["real", "synthetic"]].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    overlay = pd.read_csv(first / "histograms" / "red_blobs.csv")
    assert list(overlay.columns) == ["intensity", "red_real", "red_synthetic", "green_real", "green_synthetic",
                                     "blue_real", "blue_synthetic"]
    distances = pd.read_csv(first / "memorisation.csv")
    assert distances["source"].value_counts().to_dict() == {"synthetic": 90, "real_heldout": 180}
    assert (distances[["pixel_distance", "feature_distance"]] > 0).all().all()


def test_exact_copies_are_counted_and_sit_at_distance_zero(work):
    copies = {c: train_images(work, c)[:10] for c in range(3)}
    result = run_qa(REPORT_ONLY, work / "real", write_synthetic(work / "copies_10", copies), work / "featurenet",
                    work / "qa_copies_10")
    assert all(f["exact_train_copies"] == 10 for f in result.metrics["classes"].values())
    distances = pd.read_csv(work / "qa_copies_10" / "memorisation.csv")
    assert (distances.loc[distances["source"] == "synthetic", "pixel_distance"] == 0).all()


def test_plain_class_folders_from_outside_the_pipeline(work):
    folder = work / "plain"
    for label, sub in enumerate(unique_safe_names(TINY_CLASSES)):
        (folder / sub).mkdir(parents=True)
        for i, image in enumerate(fresh_images(label, 20, seed=400 + label)):
            (folder / sub / f"img{i}.png").write_bytes(encode_png(image))
    result = run_qa(REPORT_ONLY, work / "real", folder, work / "featurenet", work / "qa_plain")
    assert result.metrics["counts"]["synthetic"] == 60
    assert {f["label_agreement"] for f in result.metrics["classes"].values()} == {1.0}


def test_inputs_that_cannot_be_compared_are_clear_errors(work):
    real, net = work / "real", work / "featurenet"
    odd = work / "odd_class"
    (odd / "purple_dots").mkdir(parents=True)
    (odd / "purple_dots" / "a.png").write_bytes(encode_png(fresh_images(0, 1, 0)[0]))
    with pytest.raises(DataError, match="purple_dots: folder name matches no real class"):
        run_qa(REPORT_ONLY, real, odd, net, work / "qa_odd")
    big = write_synthetic(work / "big", {c: [np.zeros((64, 64, 3), np.uint8)] * 3 for c in range(3)})
    with pytest.raises(DataError, match="differ in size"):
        run_qa(REPORT_ONLY, real, big, net, work / "qa_big")
    with pytest.raises(DataError, match="synthetic image folder not found"):
        run_qa(REPORT_ONLY, real, work / "nowhere", net, work / "qa_nowhere")
    small_real = write_image_folder(work / "real_28", {"train": 4, "test": 2}, size=28)
    small_synthetic = write_image_folder(work / "synthetic_28", {"train": 4}, size=28, source="synthetic")
    with pytest.raises(DataError, match=r"feature net was trained on other data .*32 px.*28 px"):
        run_qa(REPORT_ONLY, small_real, small_synthetic, net, work / "qa_other")
    missing = params_from_mapping({"qa": {"fid": {"inception_weights": str(work / "nope.pth")}}}).qa
    with pytest.raises(ConfigError, match=r"qa.fid.inception_weights = .*nope.pth.*file not found"):
        run_qa(missing, real, work / "held_out", net, work / "qa_missing_weights")
    assert not any((work / d).exists() for d in ("qa_odd", "qa_big", "qa_nowhere", "qa_other", "qa_missing_weights"))


@pytest.mark.slow
def test_cli_exits_non_zero_with_a_table_and_no_traceback(work, tmp_path):
    synthetic = work / "uniform_noise"
    if not synthetic.exists():
        write_synthetic(synthetic, {c: BROKEN_SETS["uniform_noise"][0](work, c) for c in range(3)})
    params = tmp_path / "params.yaml"
    params.write_text("qa:\n  enforce: true\n")
    command = [sys.executable, "-m", "histosynth.cli", "qa", "--params", str(params), "--real", str(work / "real"),
               "--synthetic", str(synthetic), "--featurenet", str(work / "featurenet"), "--out", str(tmp_path / "qa")]
    failed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert failed.returncode == EXIT_GATE
    assert failed.stderr.count("error: QA gates failed") == 1 and "Traceback" not in failed.stderr
    assert "uniform" not in failed.stderr.split("error:")[1].splitlines()[0]  # names the classes in the table
    assert json.loads((tmp_path / "qa" / "metrics.json").read_text())["passed"] is False
    reported = subprocess.run(command + ["--report-only"], capture_output=True, text=True, timeout=300)
    assert reported.returncode == 0, reported.stderr


@pytest.mark.slow
def test_dvc_stage_scripts_train_the_featurenet_then_gate(work, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "real").symlink_to(work / "real")
    (tmp_path / "data" / "synthetic").symlink_to(work / "uniform_noise_stage")
    write_synthetic(work / "uniform_noise_stage", {c: BROKEN_SETS["uniform_noise"][0](work, c) for c in range(3)})
    (tmp_path / "params.yaml").write_text("qa:\n  enforce: true\n  featurenet: {epochs: 3}\n")

    def stage(name):
        return subprocess.run([sys.executable, str(repo / "stages" / f"{name}.py")], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    trained = stage("featurenet")
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "models" / "featurenet" / "record.json").read_text())["recipe"]["epochs"] == 3
    assert (tmp_path / "reports" / "featurenet" / "metrics.json").is_file()
    gated = stage("qa")
    assert gated.returncode == EXIT_GATE and "Traceback" not in gated.stderr
    assert "error: QA gates failed for 3 class(es)" in gated.stderr
    assert json.loads((tmp_path / "reports" / "qa" / "metrics.json").read_text())["passed"] is False


def test_thresholds_relax_to_the_floor_and_missing_figures_are_not_evaluated():
    from histosynth.qa.gates import evaluate_gates

    params = params_from_mapping({"qa": {"kl": {"max": 0.05, "floor_factor": 3},
                                         "label": {"min_agreement": 0.8, "floor_factor": 0.9}}}).qa
    figures = {
        "noisy": {"kl": 0.08, "kl_real_floor": 0.03, "label_agreement": 0.55, "label_agreement_real_floor": 0.6},
        "clean": {"kl": 0.08, "kl_real_floor": 0.001, "label_agreement": 0.79, "label_agreement_real_floor": 1.0},
        "tiny": {"kl": float("nan"), "kl_real_floor": float("nan"), "fid": 1.0, "fid_real_floor": None},
    }
    results = {(r.class_name, r.gate.name): r for r in evaluate_gates(figures, params)}
    assert results["noisy", "colour_kl"].threshold == pytest.approx(0.09) and results["noisy", "colour_kl"].passed
    assert results["clean", "colour_kl"].threshold == 0.05 and results["clean", "colour_kl"].passed is False
    assert results["noisy", "label_consistency"].threshold == pytest.approx(0.54)
    assert results["noisy", "label_consistency"].passed
    assert results["clean", "label_consistency"].threshold == 0.8 and not results["clean", "label_consistency"].passed
    assert results["tiny", "colour_kl"].passed is None and results["tiny", "fid"].passed is None
    assert not any(r.failed for r in results.values() if r.class_name == "tiny")
