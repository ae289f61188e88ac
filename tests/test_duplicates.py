"""Duplicate and near-duplicate detection: fingerprints, the candidate search, and ingest's use of it."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image

from conftest import textured_image
from histosynth.config.data import DataParams
from histosynth.data import duplicates
from histosynth.data.duplicates import TRANSFORMS, find_matches, pixel_distances
from histosynth.data.fingerprint import Fingerprints, fingerprint
from histosynth.data.ingest import ingest
from histosynth.data.ingest_report import EXAMPLES_NAME, METRICS_NAME, PAIRS_NAME
from histosynth.errors import ConfigError
from histosynth.images import read_png_rgb
from histosynth.manifest import read_manifest
from histosynth.qa.inputs import held_out
from test_ingest_medmnist import SHARED_BLOODMNIST, write_medmnist_npz


def orient(image: np.ndarray, transform: str) -> np.ndarray:
    """``image`` flipped left-right and/or turned counter-clockwise, as named in TRANSFORMS."""
    flipped = image[:, ::-1] if transform.startswith("flip") else image
    turns = {"rot90": 1, "rot180": 2, "rot270": 3}.get(transform.removeprefix("flip").strip("+"), 0)
    return np.ascontiguousarray(np.rot90(flipped, turns))


def jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def textures(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """``n`` distinct images that look alike: the same few textures with different random draws."""
    rng = np.random.default_rng(seed)
    return np.stack([textured_image(i % 3, size, rng) for i in range(n)])


def tissue_tiles(n: int, size: int = 48) -> np.ndarray:
    """``n`` tiles of real tissue (scikit-image's IHC image), each overlapping its neighbours by half."""
    tissue = skimage.data.immunohistochemistry()
    step = size // 2
    corners = [(y, x) for y in range(0, tissue.shape[0] - size + 1, step) for x in range(0, tissue.shape[1] - size + 1, step)]
    return np.stack([tissue[y:y + size, x:x + size] for y, x in corners[:n]])


def all_matches(batch: np.ndarray, index: np.ndarray | None = None, max_distance: float = 0.25) -> list:
    index = np.zeros((0, *batch.shape[1:]), np.uint8) if index is None else index
    prints = fingerprint(index) if len(index) else Fingerprints.empty()
    return sorted(find_matches(fingerprint(batch), lambda i: batch[i], prints, lambda j: index[j], max_distance),
                  key=lambda m: (m.later, m.earlier_indexed, m.earlier))


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_flips_and_rotations_keep_the_hash_and_match_at_distance_zero(transform):
    image = textures(1, size=40)[0]
    turned = orient(image, transform)
    assert fingerprint(turned[None]).hashes[0] == fingerprint(image[None]).hashes[0]
    distance, best = pixel_distances(turned[None], image[None])
    assert distance[0] < 1e-5 and TRANSFORMS[best[0]] == transform


def test_near_copies_are_found_and_overlapping_tiles_are_not():
    originals = tissue_tiles(30)
    copies = {3: jpeg(originals[3]),                                     # re-encoded
              7: np.clip(originals[7].astype(int) + 12, 0, 255).astype(np.uint8),  # brighter
              11: orient(jpeg(originals[11]), "flip+rot90"),             # flipped, turned, re-encoded
              19: orient(originals[19], "rot180")}                       # turned, otherwise identical
    batch = np.concatenate([originals, np.stack(list(copies.values()))])
    found = [(m.later, m.earlier, m.exact) for m in all_matches(batch)]
    assert found == [(30 + k, original, False) for k, original in enumerate(copies)]
    rotated = [m for m in all_matches(batch) if m.earlier == 19][0]
    assert rotated.distance == 0 and rotated.transform == "rot180"


def test_exact_copies_against_the_index_and_within_the_batch():
    index = textures(10, seed=1)
    batch = np.stack([index[4], textures(1, seed=2)[0], index[4], orient(index[2], "rot90")])
    found = [(m.later, m.earlier, m.earlier_indexed, m.exact) for m in all_matches(batch, index)]
    assert found == [(0, 4, True, True), (2, 0, False, True), (2, 4, True, True), (3, 2, True, False)]
    # near_max_distance 0: identical pixels only, a turned copy is not a duplicate
    exact = [(m.later, m.earlier) for m in all_matches(batch, index, max_distance=0)]
    assert exact == [(0, 4), (2, 0), (2, 4)]


def test_the_hash_search_gives_the_same_pairs_in_small_blocks(monkeypatch):
    index = textures(12, seed=3)
    batch = np.concatenate([textures(5, seed=4), index[[1, 5]], orient(index[[8]][0], "flip")[None]])
    batch = np.concatenate([batch, batch[[0, 6]]])
    expected = [(m.later, m.earlier, m.earlier_indexed) for m in all_matches(batch, index)]
    monkeypatch.setattr(duplicates, "PAIR_BLOCK", 7)  # a block of less than one row
    monkeypatch.setattr(duplicates, "CONFIRM_CHUNK", 1)
    assert [(m.later, m.earlier, m.earlier_indexed) for m in all_matches(batch, index)] == expected
    assert expected == [(5, 1, True), (6, 5, True), (7, 8, True), (8, 0, False), (9, 6, False), (9, 5, True)]


def planted_npz(root, n_classes=8):
    """A MedMNIST-like file of noise images with copies planted across and within its splits."""
    arrays = write_medmnist_npz(root / "bloodmnist.npz", n_classes=n_classes, size=28)
    train, val, test = (arrays[f"{s}_images"] for s in ("train", "val", "test"))
    labels = {s: arrays[f"{s}_labels"][:, 0] for s in ("train", "val", "test")}
    planted = {("train", 9): ("train", 2),  # within train
               ("val", 0): ("train", 3),  # val copies train
               ("test", 1): ("train", 5),  # test copies train, under another label (below)
               ("test", 2): ("train", 7),  # a turned copy (below)
               ("test", 4): ("val", 1)}  # test copies val
    images = {"train": train, "val": val, "test": test}
    for (split, i), (earlier, j) in planted.items():
        images[split][i] = images[earlier][j]
        labels[split][i] = labels[earlier][j]
    test[2] = orient(train[7], "rot90")
    labels["test"][1] = (labels["train"][5] + 1) % n_classes
    arrays.update({f"{s}_labels": labels[s][:, None] for s in labels})
    np.savez_compressed(root / "bloodmnist.npz", **arrays)
    return arrays


def medmnist_params(root, **duplicates) -> DataParams:
    return DataParams(source="medmnist:bloodmnist", root=str(root), image_size=28, duplicates=duplicates)


def test_qa_holds_out_only_the_val_images_that_copy_no_train_image(tmp_path):
    planted_npz(tmp_path / "raw")
    df = ingest(medmnist_params(tmp_path / "raw"), tmp_path / "real", tmp_path / "report")
    val = held_out(read_manifest(tmp_path / "real"), "val")
    assert len(val) == 8 * 2 - 1 and "bloodmnist_val_000000" not in set(val["id"])
    train = held_out(df, "train")
    assert len(train) == 8 * 5 and "bloodmnist_train_000009" in set(train["id"])  # a copy within train stays


def test_warn_reports_every_planted_copy_and_keeps_the_splits(tmp_path):
    planted_npz(tmp_path / "raw")
    df = ingest(medmnist_params(tmp_path / "raw"), tmp_path / "real", tmp_path / "report")

    assert len(df) == 8 * (5 + 2 + 3)  # nothing dropped
    of = df.set_index("id")["duplicate_of"]
    assert of[of != ""].to_dict() == {"bloodmnist_train_000009": "bloodmnist_train_000002",
                                      "bloodmnist_val_000000": "bloodmnist_train_000003",
                                      "bloodmnist_test_000001": "bloodmnist_train_000005",
                                      "bloodmnist_test_000002": "bloodmnist_train_000007"}
    assert (df["group"] == df["id"]).all()  # fixed splits, no groups: each image its own
    metrics = json.loads((tmp_path / "report" / METRICS_NAME).read_text())
    assert metrics["action"] == "warn" and metrics["dropped"] == {"train": 0, "val": 0, "test": 0}
    assert {k: v for k, v in metrics["pairs"].items() if v["images"]} == {
        "train-train": {"images": 1, "exact": 1, "conflicting_labels": 0},
        "train-val": {"images": 1, "exact": 1, "conflicting_labels": 0},
        "train-test": {"images": 2, "exact": 1, "conflicting_labels": 1},
        "val-test": {"images": 1, "exact": 1, "conflicting_labels": 0}}
    pairs = pd.read_csv(tmp_path / "report" / PAIRS_NAME, sep="\t")
    conflict = pairs[pairs["conflicting_labels"]].iloc[0]
    names = df.drop_duplicates("label").set_index("id")["class_name"]
    assert conflict["later_id"] == "bloodmnist_test_000001" and conflict["earlier_id"] == "bloodmnist_train_000005"
    assert conflict["later_class"] != conflict["earlier_class"]
    assert {conflict["later_class"], conflict["earlier_class"]} <= set(names)
    turned = pairs[pairs["later_id"] == "bloodmnist_test_000002"].iloc[0]
    assert (turned["kind"], turned["distance"], turned["transform"]) == ("near", 0.0, "rot90")
    picture = read_png_rgb(tmp_path / "report" / EXAMPLES_NAME)
    assert picture.shape[0] >= 5 * 84  # one row per pair


def test_drop_leaves_the_held_out_copies_unwritten(tmp_path):
    planted_npz(tmp_path / "raw")
    df = ingest(medmnist_params(tmp_path / "raw", action="drop"), tmp_path / "real", tmp_path / "report")

    gone = {"bloodmnist_val_000000", "bloodmnist_test_000001", "bloodmnist_test_000002", "bloodmnist_test_000004"}
    assert not gone & set(df["id"]) and len(df) == 80 - len(gone)
    assert not any((tmp_path / "real").rglob("bloodmnist_test_000001.png"))
    assert set(df.loc[df["duplicate_of"] != "", "id"]) == {"bloodmnist_train_000009"}  # train copies stay
    metrics = json.loads((tmp_path / "report" / METRICS_NAME).read_text())
    assert metrics["dropped"] == {"train": 0, "val": 1, "test": 3}
    assert read_manifest(tmp_path / "real")["id"].tolist() == df["id"].tolist()


def test_no_duplicates_still_writes_the_whole_report(tmp_path):
    write_medmnist_npz(tmp_path / "raw" / "bloodmnist.npz", n_classes=8, size=28)
    ingest(medmnist_params(tmp_path / "raw"), tmp_path / "real", tmp_path / "report")
    metrics = json.loads((tmp_path / "report" / METRICS_NAME).read_text())
    assert all(v["images"] == 0 for v in metrics["pairs"].values()) and metrics["groups"] == 80
    assert pd.read_csv(tmp_path / "report" / PAIRS_NAME, sep="\t").empty
    assert read_png_rgb(tmp_path / "report" / EXAMPLES_NAME).shape[2] == 3


def test_grouping_a_source_with_fixed_splits_is_a_config_error():
    with pytest.raises(ConfigError, match="fixed splits that grouping cannot change; use warn"):
        from histosynth.config import params_from_mapping
        params_from_mapping({"data": {"source": "medmnist:bloodmnist", "duplicates": {"action": "group"}}})


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_BLOODMNIST.is_file(),
                    reason=f"real BloodMNIST file not present at {SHARED_BLOODMNIST} (only on the dev machine)")
def test_bloodmnist_official_splits_hold_copies_of_training_images(tmp_path):
    """The real file: 8 copies within train, 3 val and 5 test images identical to train images (one
    of them labelled neutrophil in test, eosinophil in train), a near copy in test, a val-test copy."""
    params = DataParams(source="medmnist:bloodmnist", root=str(SHARED_BLOODMNIST.parent), image_size=28,
                        duplicates={"action": "drop"})
    df = ingest(params, tmp_path / "real", tmp_path / "report")

    metrics = json.loads((tmp_path / "report" / METRICS_NAME).read_text())
    assert metrics["pairs"] == {
        "train-train": {"images": 8, "exact": 8, "conflicting_labels": 0},
        "train-val": {"images": 3, "exact": 3, "conflicting_labels": 0},
        "train-test": {"images": 6, "exact": 5, "conflicting_labels": 1},
        "val-val": {"images": 0, "exact": 0, "conflicting_labels": 0},
        "val-test": {"images": 1, "exact": 1, "conflicting_labels": 0},
        "test-test": {"images": 0, "exact": 0, "conflicting_labels": 0}}
    pairs = pd.read_csv(tmp_path / "report" / PAIRS_NAME, sep="\t")
    conflict = pairs[pairs["conflicting_labels"]]
    assert conflict[["later_id", "later_class", "earlier_id", "earlier_class", "kind"]].values.tolist() == [
        ["bloodmnist_test_003126", "neutrophil", "bloodmnist_train_001018", "eosinophil", "exact"]]
    held_out = pairs[pairs["later_split"] != "train"]
    gone = {"bloodmnist_val_000896", "bloodmnist_val_000956", "bloodmnist_val_001485", "bloodmnist_test_001323",
            "bloodmnist_test_002491", "bloodmnist_test_002664", "bloodmnist_test_002773", "bloodmnist_test_002966",
            "bloodmnist_test_003126", "bloodmnist_test_003218"}
    assert set(held_out["later_id"]) == gone and held_out["dropped"].all()
    assert metrics["dropped"] == {"train": 0, "val": 3, "test": 7}
    assert not gone & set(df["id"]) and len(df) == 11959 + 1712 + 3421 - 10
    assert (df.loc[df["split"] != "train", "duplicate_of"] == "").all()


def test_a_big_cluster_of_copies_costs_comparisons_in_proportion_to_its_size(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    blank = np.full((30, 30, 3), 242, np.uint8)
    for name in ("a", "b"):
        (tmp_path / "cells" / name).mkdir(parents=True)
    for k in range(150):  # one background tile saved 150 times, as tile sets often hold
        Image.fromarray(blank).save(tmp_path / "cells" / "a" / f"blank{k:03d}.png")
    for name in ("a", "b"):
        for k in range(12):
            Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(tmp_path / "cells" / name / f"x{k}.png")
    compared = []
    real_distances = duplicates.pixel_distances
    monkeypatch.setattr(duplicates, "pixel_distances", lambda a, b: compared.append(len(a)) or real_distances(a, b))

    df = ingest(DataParams(source=f"folder:{tmp_path / 'cells'}", image_size=28), tmp_path / "real",
                tmp_path / "report")
    pairs = json.loads((tmp_path / "report" / METRICS_NAME).read_text())["pairs"]
    assert pairs["train-train"] == {"images": 149, "exact": 149, "conflicting_labels": 0}  # one group: all in train
    # the 150 copies fill train; class a's other 12 images are shared between test and val
    assert df[df["class_name"] == "a"].groupby("split").size().to_dict() == {"test": 6, "train": 150, "val": 6}
    assert sum(compared) < 2 * 150 * duplicates.CONFIRM_CHUNK < 150 * 149  # grouping + check, not all pairs
