"""The QA gates on held-out real images and on deliberately broken synthetic sets.

A real folder of textured tiles trains the feature net once per module and is augmented by
the real augment stage (the affine children the memorisation gate also searches); every
synthetic set is written the way the generate stage writes one (class folders, MD5SUMS,
manifest) and runs through the same `run_qa` as the DVC stage, with the default thresholds.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from conftest import TINY_CLASSES, textured_image, write_image_folder, write_synthetic
from histosynth.augment import augment
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.classifier import FeaturenetParams
from histosynth.dataset import load_image_set
from histosynth.dihedral import dihedral_variant
from histosynth.entry import EXIT_GATE
from histosynth.errors import ConfigError, DataError
from histosynth.fsutil import unique_safe_names
from histosynth.images import encode_png
from histosynth.output_policy import MARKER
from histosynth.qa.gates import QaGateFailed
from histosynth.qa.registry import GATES
from histosynth.qa.run import run_qa

N_SYNTHETIC = 60
ALL_GATES = {g.name for g in GATES}
# The classification accuracy score (tests/test_qa_cas.py) is off here: these tests are about the gates.
NO_CAS = {"cas": {"enabled": False}}
REPORT_ONLY = params_from_mapping({"qa": {"enforce": False, **NO_CAS}}).qa


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    real = write_image_folder(root / "real", {"train": 60, "val": 60, "test": 20})
    train_featurenet(FeaturenetParams(epochs=8, patience=3), real, root / "featurenet")
    augment(params_from_mapping({"augment": {"per_class": 80}}).augment, real, root / "augmented", root / "preview",
            workers=1)
    return root


def qa(work, synthetic, out, params=REPORT_ONLY):
    """The qa stage's call: real train/val, the affine children, the module's feature net."""
    return run_qa(params, work / "real", synthetic, work / "featurenet", work / out, work / "augmented")


def fresh_images(label, n, seed):
    rng = np.random.default_rng(seed)
    return [textured_image(label, 32, rng) for _ in range(n)]


def train_images(work, label):
    train = load_image_set(work / "real", "train")
    return list(train.of_class(label))


def affine_children(work, label):
    children = load_image_set(work / "augmented")
    manifest = pd.read_parquet(work / "augmented" / "manifest.parquet")
    keep = (manifest["source"] == "affine").to_numpy() & (children.labels == label)
    return list(children.images[keep])


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
        {"colour_kl", "fid", "coverage"}, {"duplicates", "memorisation_pixel"}),
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
    # A blurry generator: its colours and textures are off (blur mixes each texture's colours).
    # It copies nothing although its images are close (in L2) to many training images at once;
    # on real tissue the ratio test does not call that memorisation (tests/test_qa_memorisation.py).
    "blurry_fresh_images": (
        lambda work, c: degraded(fresh_images(c, N_SYNTHETIC, seed=400 + c), "blur"),
        {"colour_kl", "coverage"}, {"duplicates", "memorisation_feature"}),
    # A generator that emits its training images mirrored or turned is still copying them.
    "train_copies_flipped": (
        lambda work, c: [dihedral_variant(im[None], 1 + i % 7)[0] for i, im in enumerate(train_images(work, c))],
        {"memorisation_pixel"}, {"duplicates", "label_consistency"}),
    # Trained on the augmented set, a generator can copy an affine child of a training image.
    "affine_child_copies": (
        lambda work, c: degraded(affine_children(work, c), "noise", seed=10 + c),
        {"memorisation_pixel"}, {"duplicates"}),
    "label_swap": (
        lambda work, c: fresh_images((c + 1) % 3, N_SYNTHETIC, seed=200 + c),
        {"label_consistency"}, {"duplicates"}),
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
    result = qa(work, synthetic, "qa_held_out")
    assert outcome(result) == {gate: {True} for gate in ALL_GATES}
    assert result.passed and result.metrics["passed"] is True
    for figures in result.metrics["classes"].values():  # comfortably, not by a hair
        for gate in ("colour_kl", "fid", "label_consistency", "coverage"):
            assert figures["gates"][gate]["margin"] > 0.2, (gate, figures["gates"][gate])


@pytest.mark.parametrize("name", sorted(BROKEN_SETS))
def test_each_broken_set_fails_its_gate_and_not_the_unrelated_ones(work, name):
    make, must_fail, must_pass = BROKEN_SETS[name]
    synthetic = write_synthetic(work / name, {c: make(work, c) for c in range(3)})
    result = qa(work, synthetic, f"qa_{name}")
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
        qa(work, synthetic, "qa_enforced", params_from_mapping({"qa": {"enforce": True, **NO_CAS}}).qa)
    message = str(err.value)
    assert "QA gates failed for 3 class(es)" in message
    header, *rows = message.splitlines()[1:]
    assert header.split() == ["class", "gate", "verdict", "value", "threshold", "floor", "mean±sd", "(q)", "margin",
                              "from"]
    kl_rows = [r for r in rows if " colour_kl " in r]
    assert len(kl_rows) == 3
    assert all(" FAIL " in r and "min(qa.kl.max, qa.kl.floor_factor x floor q_high)" in r for r in kl_rows)
    assert all(float(r.split("%")[0].split()[-1]) < 0 for r in rows)  # every failed gate has a negative margin
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["passed"] is False and metrics["failed_gates"] == len(rows)
    assert all((report / f).is_file() for f in ("histograms.csv", "memorisation.csv"))


def test_report_files_are_complete_and_deterministic(work):
    synthetic = write_image_folder(work / "held_out_2", {"train": 30}, seed=11, source="synthetic")
    first, second = work / "qa_det_1", work / "qa_det_2"
    for out in (first, second):
        qa(work, synthetic, out.name)
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert files == [MARKER, "histograms.csv", "histograms/blue_noise.csv", "histograms/green_stripes.csv",
                                       "histograms/red_blobs.csv", "memorisation.csv", "metrics.json"]
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f

    metrics = json.loads((first / "metrics.json").read_text())
    assert set(metrics) >= {"passed", "classes", "fid", "featurenet", "counts", "smallest_margin"}
    assert set(metrics["classes"]) == set(TINY_CLASSES)
    figures = metrics["classes"]["red blobs"]
    for key in ("kl", "kl_real_floor", "fid", "fid_real_floor", "label_agreement", "label_agreement_real_floor",
                "precision", "recall", "density", "coverage", "coverage_real_floor", "duplicates",
                "memorised_share_pixel", "memorised_share_feature", "exact_train_copies"):
        assert isinstance(figures[key], (int, float)), key
    for metric in ("kl", "fid", "coverage", "label_agreement", "memorised_share_pixel"):
        low, high = figures[f"{metric}_real_floor_q_low"], figures[f"{metric}_real_floor_q_high"]
        assert low <= figures[f"{metric}_real_floor"] <= high and figures[f"{metric}_real_floor_sd"] >= 0
    for gate, verdict in figures["gates"].items():
        assert set(verdict) == {"passed", "value", "threshold", "margin", "floor", "floor_sd", "floor_quantile"}
    assert set(figures["gates"]) == ALL_GATES and figures["n_synthetic"] == 30
    assert set(metrics["fid"]) == {"fid", "fid_real_floor", "fid_real_floor_sd"}

    histograms = pd.read_csv(first / "histograms.csv")
    assert list(histograms.columns) == ["class", "channel", "bin", "real", "synthetic"]
    assert len(histograms) == 3 * 3 * REPORT_ONLY.kl.bins
    sums = histograms.groupby(["class", "channel"])[["real", "synthetic"]].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    overlay = pd.read_csv(first / "histograms" / "red_blobs.csv")
    assert list(overlay.columns) == ["intensity", "red_real", "red_synthetic", "green_real", "green_synthetic",
                                     "blue_real", "blue_synthetic"]
    distances = pd.read_csv(first / "memorisation.csv")
    assert distances["source"].value_counts().to_dict() == {"synthetic": 90, "real_heldout": 180}  # val only
    assert (distances[["pixel_distance", "feature_distance"]] > 0).all().all()


def test_exact_copies_are_counted_and_sit_at_distance_zero(work):
    copies = {c: train_images(work, c)[:10] for c in range(3)}
    result = qa(work, write_synthetic(work / "copies_10", copies), "qa_copies_10")
    assert all(f["exact_train_copies"] == 10 for f in result.metrics["classes"].values())
    distances = pd.read_csv(work / "qa_copies_10" / "memorisation.csv")
    assert (distances.loc[distances["source"] == "synthetic", "pixel_distance"] == 0).all()


def test_plain_class_folders_from_outside_the_pipeline(work):
    folder = work / "plain"
    for label, sub in enumerate(unique_safe_names(TINY_CLASSES)):
        (folder / sub).mkdir(parents=True)
        for i, image in enumerate(fresh_images(label, 20, seed=400 + label)):
            (folder / sub / f"img{i}.png").write_bytes(encode_png(image))
    result = qa(work, folder, "qa_plain")
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
    small_real = write_image_folder(work / "real_28", {"train": 4, "val": 2}, size=28)
    small_synthetic = write_image_folder(work / "synthetic_28", {"train": 4}, size=28, source="synthetic")
    with pytest.raises(DataError, match=r"feature net was trained on other data .*32 px.*28 px"):
        run_qa(REPORT_ONLY, small_real, small_synthetic, net, work / "qa_other")
    missing = params_from_mapping({"qa": {"fid": {"inception_weights": str(work / "nope.pth")}, **NO_CAS}}).qa
    comparable = write_image_folder(work / "comparable", {"train": 4}, seed=5, source="synthetic")
    with pytest.raises(ConfigError, match=r"qa.fid.inception_weights = .*nope.pth.*file not found"):
        run_qa(missing, real, comparable, net, work / "qa_missing_weights")
    assert not any((work / d).exists() for d in ("qa_odd", "qa_big", "qa_nowhere", "qa_other", "qa_missing_weights"))


@pytest.mark.slow
def test_cli_exits_non_zero_with_a_table_and_no_traceback(work, tmp_path):
    synthetic = work / "uniform_noise"
    if not synthetic.exists():
        write_synthetic(synthetic, {c: BROKEN_SETS["uniform_noise"][0](work, c) for c in range(3)})
    params = tmp_path / "params.yaml"
    params.write_text("qa:\n  enforce: true\n  cas: {enabled: false}\n")
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
    (tmp_path / "params.yaml").write_text("qa:\n  enforce: true\n  featurenet: {epochs: 3}\n  cas: {steps: 20}\n")

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
    metrics = json.loads((tmp_path / "reports" / "qa" / "metrics.json").read_text())
    assert metrics["passed"] is False
    # the classification accuracy score is written beside the gates, and gates nothing
    assert metrics["cas"]["steps"] == 20 and 0 <= metrics["cas"]["synthetic_only"] <= 1


def _floor(mean, low, high, sd=0.01):
    return {"real_floor": mean, "real_floor_sd": sd, "real_floor_q_low": low, "real_floor_q_high": high}


def _figures(**metrics):
    out = {}
    for metric, (value, floor) in metrics.items():
        out[metric] = value
        out |= {f"{metric}_{k}": v for k, v in (floor or {}).items()}
    return out


def test_thresholds_come_from_the_floor_quantile_and_the_absolute_limits_bind():
    from histosynth.qa.gates import evaluate_gates

    params = params_from_mapping({"qa": {"kl": {"max": 0.05, "floor_factor": 3},
                                         "label": {"min_agreement": 0.5, "floor_factor": 0.8},
                                         "memorisation": {"max_share": 0.1}}}).qa
    figures = {
        # tiny real-vs-real KL: the floor sets the threshold, far below the absolute 0.05
        "homogeneous": _figures(kl=(0.02, _floor(0.003, 0.001, 0.005)), label_agreement=(0.7, _floor(0.9, 0.85, 0.95)),
                                memorised_share_pixel=(0.12, _floor(0.01, 0.0, 0.03))),
        # varied real images: 3 x floor would allow 0.12, the absolute limit stops at 0.05
        "varied": _figures(kl=(0.06, _floor(0.03, 0.02, 0.04)), label_agreement=(0.55, _floor(0.5, 0.4, 0.6)),
                           memorised_share_pixel=(0.12, _floor(0.08, 0.0, 0.15))),
        "tiny": _figures(kl=(float("nan"), None), fid=(1.0, None)),
    }
    results = {(r.class_name, r.gate.name): r for r in evaluate_gates(figures, params)}
    kl = results["homogeneous", "colour_kl"]
    assert kl.threshold == pytest.approx(0.015) and kl.passed is False and kl.margin == pytest.approx(-1 / 3)
    assert results["varied", "colour_kl"].threshold == 0.05 and results["varied", "colour_kl"].passed is False
    label = results["homogeneous", "label_consistency"]
    assert label.threshold == pytest.approx(0.68) and label.passed and label.margin == pytest.approx(0.02 / 0.68)
    # 0.8 x 0.4 = 0.32 would excuse anything; the absolute 0.5 binds
    assert results["varied", "label_consistency"].threshold == 0.5 and results["varied", "label_consistency"].passed
    # memorisation: the limit, relaxed to what held-out real images themselves score
    assert results["homogeneous", "memorisation_pixel"].threshold == 0.1
    assert results["homogeneous", "memorisation_pixel"].passed is False
    assert results["varied", "memorisation_pixel"].threshold == 0.15 and results["varied", "memorisation_pixel"].passed
    # no floor could be drawn: not evaluated, not failed
    assert results["tiny", "colour_kl"].passed is None and results["tiny", "fid"].passed is None
    assert not any(r.failed for r in results.values() if r.class_name == "tiny")


def test_qa_never_reads_the_real_test_split(work, tmp_path):
    """Same featurenet and QA bytes with data/real/test deleted: the test split stays the benchmark's."""
    synthetic = write_image_folder(work / "held_out_3", {"train": 30}, seed=13, source="synthetic")
    without_test = tmp_path / "real"
    shutil.copytree(work / "real", without_test)
    shutil.rmtree(without_test / "test")
    outputs = {}
    for name, real in (("with", work / "real"), ("without", without_test)):
        recipe = FeaturenetParams(epochs=4, patience=0, folds=2)
        train_featurenet(recipe, real, tmp_path / f"net_{name}", tmp_path / f"net_report_{name}")
        run_qa(REPORT_ONLY, real, synthetic, tmp_path / f"net_{name}", tmp_path / f"qa_{name}", work / "augmented")
        outputs[name] = {str(p.relative_to(tmp_path / f"qa_{name}")): p.read_bytes()
                         for p in sorted((tmp_path / f"qa_{name}").rglob("*")) if p.is_file()}
        outputs[name]["featurenet"] = (tmp_path / f"net_report_{name}" / "metrics.json").read_bytes()
    assert outputs["with"] == outputs["without"]
