"""Curation on real files: candidates written as generate writes them, the real feature net and its
cross-fitted copies, the real augment stage's children."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import textured_image, write_image_folder, write_synthetic
from histosynth.augment import augment
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.classifier import FeaturenetParams
from histosynth.config.curate import CurateParams
from histosynth.curate import curate
from histosynth.dataset import load_image_set
from histosynth.errors import DataError
from histosynth.images import md5_file
from histosynth.manifest import read_manifest

GOOD, NOISE, WRONG, N_KEEP = 24, 6, 6, 10  # about 30 % of good ones fail the default confidence quantile


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("curate")
    real = write_image_folder(root / "real", {"train": 48, "val": 24, "test": 4})
    train_featurenet(FeaturenetParams(epochs=20, patience=5, folds=3), real, root / "featurenet")
    augment(params_from_mapping({"augment": {"per_class": 64}}).augment, real, root / "augmented", root / "preview",
            workers=1)
    return root


def candidates(work: Path) -> Path:
    """Per class, in generation order: wrong-class images, noise, then fresh textures of the class."""
    rng = np.random.default_rng(5)
    by_label = {}
    for c in range(3):
        wrong = [textured_image((c + 1) % 3, 32, rng) for _ in range(WRONG)]
        noise = list(rng.integers(0, 256, (NOISE, 32, 32, 3), dtype=np.uint8))
        good = [textured_image(c, 32, rng) for _ in range(GOOD)]
        by_label[c] = wrong + noise + good
    return write_synthetic(work / "candidates", by_label) if not (work / "candidates").exists() else work / "candidates"


def run(work: Path, out: str, params: CurateParams = CurateParams(), n: int = N_KEEP) -> pd.DataFrame:
    return curate(params, n, candidates(work), work / "real", work / "augmented", work / "featurenet",
                  work / out, work / f"{out}_report")


def test_wrong_class_and_noise_candidates_are_rejected(work):
    kept = run(work, "synthetic")
    assert len(kept) == 3 * N_KEEP and set(kept["curation"]) == {"kept"}
    index = kept["id"].str.rsplit("_", n=1).str[1].astype(int)
    assert (index >= WRONG + NOISE).all(), "only the fresh textures of the class asked for pass"
    scores = pd.read_csv(work / "synthetic_report" / "scores.csv")
    by_kind = scores.assign(kind=np.tile(["wrong"] * WRONG + ["noise"] * NOISE + ["good"] * GOOD, 3))
    assert not by_kind.loc[by_kind["kind"] == "wrong", "passed_confidence"].any()
    assert not by_kind.loc[by_kind["kind"] == "noise", ["passed_confidence", "passed_realism"]].all(axis=1).any()
    metrics = json.loads((work / "synthetic_report" / "metrics.json").read_text())
    assert {c["kept"] for c in metrics["classes"].values()} == {N_KEEP}


def test_the_kept_set_is_a_synthetic_folder_with_checksums_and_scores(work):
    run(work, "synthetic_2")
    manifest = read_manifest(work / "synthetic_2")
    source = read_manifest(work / "candidates").set_index("id")
    assert (manifest.set_index("id")["md5"] == source.loc[manifest["id"], "md5"]).all()  # bytes unchanged
    for folder in {p.split("/")[0] for p in manifest["path"]}:
        lines = (work / "synthetic_2" / folder / "MD5SUMS").read_text().splitlines()
        sums = dict(reversed(line.split("  ", 1)) for line in lines)
        assert sums == {p.name: md5_file(p) for p in (work / "synthetic_2" / folder).glob("*.png")}
    for column in ("confidence", "realism", "copy_ratio", "curation"):
        assert manifest[column].notna().all()
    first = (work / "synthetic" / "manifest.parquet").read_bytes()
    assert (work / "synthetic_2" / "manifest.parquet").read_bytes() == first  # deterministic


def test_copies_of_training_images_are_rejected_as_near_copies(work, tmp_path):
    train = load_image_set(work / "real", "train")
    rng = np.random.default_rng(100)  # not the fixture's seed: fresh images, not its training images
    copies = {c: list(train.of_class(c)[:4]) + [textured_image(c, 32, rng) for _ in range(8)] for c in range(3)}
    folder = write_synthetic(tmp_path / "copies", copies)
    curate(CurateParams(confidence_quantile=0.0, realism_quantile=0.0), 4, folder, work / "real",
           work / "augmented", work / "featurenet", tmp_path / "out", tmp_path / "report")
    scores = pd.read_csv(tmp_path / "report" / "scores.csv")
    assert scores.groupby("label")["near_copy"].apply(lambda s: s.iloc[:4].all()).all()
    assert (scores["copy_ratio"].to_numpy().reshape(3, 12)[:, :4] == 0).all()
    kept = read_manifest(tmp_path / "out")
    assert kept["id"].str.rsplit("_", n=1).str[1].astype(int).ge(4).all()


def test_each_space_named_rejects_copies_on_its_own(work, tmp_path):
    train = load_image_set(work / "real", "train")
    rng = np.random.default_rng(101)
    copies = {c: list(train.of_class(c)[:4]) + [textured_image(c, 32, rng) for _ in range(8)] for c in range(3)}
    folder = write_synthetic(tmp_path / "copies", copies)
    lenient = CurateParams(confidence_quantile=0.0, realism_quantile=0.0)
    reports = {}
    for spaces in (["pixel"], ["feature"], ["pixel", "feature"]):
        name = "_".join(spaces)
        curate(lenient.model_copy(update={"near_copy_spaces": spaces}), 4, folder, work / "real", work / "augmented",
               work / "featurenet", tmp_path / name, tmp_path / f"{name}_report")
        reports[name] = pd.read_csv(tmp_path / f"{name}_report" / "scores.csv")
        kept = read_manifest(tmp_path / name)
        assert kept["id"].str.rsplit("_", n=1).str[1].astype(int).ge(4).all(), f"{spaces}: no copy ships"
    copied = np.tile(np.arange(12) < 4, 3)
    both = reports["pixel_feature"]
    # a verbatim copy sits on its original in QA's feature space too: ratio 0, flagged
    assert (both.loc[copied, "feature_copy_ratio"] == 0).all() and both.loc[copied, "near_copy_feature"].all()
    for name, report in reports.items():  # every run scores both spaces; the spaces named decide
        assert report["near_copy_feature"].equals(both["near_copy_feature"])
        expected = np.zeros(len(report), bool)
        for space in name.split("_"):
            expected |= report[f"near_copy_{space}"].to_numpy()
        assert (report["near_copy"].to_numpy() == expected).all()
    metrics = json.loads((tmp_path / "pixel_feature_report" / "metrics.json").read_text())
    assert all(m["near_copies_feature"] >= 4 and m["feature_copy_ratio_threshold"] > 0
               for m in metrics["classes"].values())


def test_near_copy_spaces_must_name_each_space_once():
    with pytest.raises(ValueError, match="at most once, and at least one"):
        CurateParams(near_copy_spaces=[])
    with pytest.raises(ValueError, match="at most once"):
        CurateParams(near_copy_spaces=["pixel", "pixel"])


def test_too_few_passing_candidates_fill_up_by_confidence_with_a_warning(work, caplog):
    n = GOOD + 2  # more than there are good candidates
    kept = run(work, "synthetic_filled", n=n)
    metrics = json.loads((work / "synthetic_filled_report" / "metrics.json").read_text())["classes"]
    for name, counts in metrics.items():
        assert counts["kept"] + counts["filled"] == n and counts["filled"] >= 2, name
    assert (kept["curation"] == "filled").sum() == sum(c["filled"] for c in metrics.values())
    assert "passed curation" in caplog.text and "generate.overgenerate" in caplog.text


def test_disabled_curation_keeps_the_first_candidates(work):
    kept = run(work, "synthetic_all", CurateParams(enabled=False), n=5)
    assert kept.groupby("label")["id"].apply(list).tolist() == [
        [f"syn_{f}_{i:06d}" for i in range(5)] for f in ("red_blobs", "green_stripes", "blue_noise")]


def test_inputs_that_do_not_fit_are_clear_errors(work, tmp_path):
    with pytest.raises(DataError, match="fewer than generate.n_per_class = 100"):
        run(work, "too_many", n=100)
    other = write_synthetic(tmp_path / "other", {c: [textured_image(c, 32, np.random.default_rng(0))] * 2
                                                 for c in range(3)}, classes=("a", "b", "c"))
    with pytest.raises(DataError, match="differ from the real ones"):
        curate(CurateParams(), 1, other, work / "real", work / "augmented", work / "featurenet", tmp_path / "o",
               tmp_path / "r")
    assert not (tmp_path / "o").exists()
