"""folder: sources split by group (patient, slide, original image): the three rules, duplicates
joining groups, the split's guarantees, and the group in the manifest, package and SQL dump."""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from histosynth.config import params_from_mapping
from histosynth.config.data import DataParams
from histosynth.data.duplicates import TRANSFORMS
from histosynth.data.ingest import ingest
from histosynth.errors import ConfigError, DataError
from histosynth.generators.training.checkpoint import write_record
from histosynth.package.stage import build_package
from package_inputs import qa_metrics, write_synthetic_folder
from test_duplicates import jpeg, orient

PATTERN = r"^(?P<group>P\d+)_"


def save_png(path: Path, rng: np.random.Generator) -> None:
    """A tiny image of random pixels: never a duplicate of another one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(path)


def write_layout(root: Path, layout: dict[tuple[str, str], int], rule: str, seed: int = 0) -> dict[str, str]:
    """Images of patients in class folders, named and laid out for ``rule``; returns path -> patient.

    ``layout`` maps (class, patient) to a number of images. folder: <class>/<patient>/<n>.png;
    regex: <class>/<patient>_<n>.png; csv: <class>/img<k>.png plus <root>.groups.csv."""
    rng = np.random.default_rng(seed)
    patient_of, k = {}, 0
    for (name, patient), n in sorted(layout.items()):
        for i in range(n):
            rel = {"folder": f"{name}/{patient}/{i}.png", "regex": f"{name}/{patient}_{i}.png",
                   "csv": f"{name}/img{k:03d}.png"}[rule]
            save_png(root / rel, rng)
            patient_of[rel] = patient
            k += 1
    if rule == "csv":
        pd.DataFrame({"file": list(patient_of), "group": list(patient_of.values())}).to_csv(
            csv_of(root), index=False)
    return patient_of


def csv_of(root: Path) -> Path:
    return root.with_name(root.name + ".groups.csv")


def group_params(root: Path, rule: str, **extra) -> DataParams:
    group = {"by": rule, **({"pattern": PATTERN} if rule == "regex" else {}),
             **({"csv": str(csv_of(root))} if rule == "csv" else {})}
    return DataParams(source=f"folder:{root}", image_size=28, group=group, **extra)


def patients_by_split(df: pd.DataFrame, patient_of: dict[str, str], root: Path) -> pd.Series:
    rel = df["origin"].str.removeprefix(f"{root}/")
    return pd.Series(df["split"].to_numpy(), index=rel.map(patient_of)).groupby(level=0).unique()


layouts = st.integers(2, 3).flatmap(lambda n_classes: st.dictionaries(
    st.tuples(st.sampled_from([f"class {c}" for c in "ABC"[:n_classes]]), st.sampled_from([f"P{p}" for p in range(8)])),
    st.integers(1, 4), min_size=3, max_size=14))


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layout=layouts, rule=st.sampled_from(["folder", "regex", "csv"]), seed=st.integers(0, 3),
       fractions=st.sampled_from([(0.15, 0.15), (0.25, 0.25), (0.0, 0.3), (0.3, 0.0)]))
def test_no_patient_is_ever_in_two_splits(layout, rule, seed, fractions):
    classes = {name for name, _ in layout}
    per_class = {name: sum(n for (c, _), n in layout.items() if c == name) for name in classes}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cells"
        patient_of = write_layout(root, layout, rule, seed)
        params = group_params(root, rule, seed=seed, val_fraction=fractions[0], test_fraction=fractions[1])
        try:
            df = ingest(params, Path(tmp) / "real")
        except DataError as err:
            # only for sets too small to split: a class short of images, or too few groups to share out
            assert "too few for data.val_fraction" in str(err) or "cannot be shared out" in str(err) \
                or len(classes) < 2, str(err)
            assert not (Path(tmp) / "real").exists()
            if "too few for" in str(err):
                assert min(per_class.values()) < 4
            return
    assert len(df) == len(patient_of) and df["origin"].is_unique
    splits = patients_by_split(df, patient_of, root)
    assert splits.map(len).eq(1).all(), splits[splits.map(len) > 1]
    assert (df["group"].to_numpy() == df["origin"].str.removeprefix(f"{root}/").map(patient_of).to_numpy()).all()
    trained = set(df.loc[df["split"] == "train", "class_name"])
    assert trained == classes  # every class keeps training images
    for split, fraction in zip(("val", "test"), fractions):
        assert (df["split"] == split).any() == (fraction > 0)


def many_patients(n_patients: int = 16) -> dict[tuple[str, str], int]:
    rng = np.random.default_rng(5)
    return {(name, f"P{p:02d}"): int(rng.integers(1, 4)) for name in ("benign", "tumour", "stroma")
            for p in range(n_patients) if rng.random() < 0.8}


def test_patients_stay_together_and_every_class_reaches_every_split(tmp_path):
    layout = many_patients()
    patient_of = write_layout(tmp_path / "cells", layout, "folder")
    df = ingest(group_params(tmp_path / "cells", "folder"), tmp_path / "real")

    assert patients_by_split(df, patient_of, tmp_path / "cells").map(len).eq(1).all()
    counts = df.groupby(["class_name", "split"]).size().unstack(fill_value=0)
    assert (counts > 0).all().all()  # stratified: every class in every split
    shares = df["split"].value_counts(normalize=True)
    assert 0.08 <= shares["test"] <= 0.25 and 0.08 <= shares["val"] <= 0.25
    again = ingest(group_params(tmp_path / "cells", "folder"), tmp_path / "again")
    assert again[["id", "split", "group"]].equals(df[["id", "split", "group"]])
    other = ingest(group_params(tmp_path / "cells", "folder", seed=1), tmp_path / "other")
    assert set(other.loc[other["split"] == "test", "group"]) != set(df.loc[df["split"] == "test", "group"])


def test_the_sub_folder_level_picks_patient_or_slide(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for patient in ("P1", "P2", "P3"):
            for slide in ("s1", "s2"):
                for i in range(2):
                    save_png(tmp_path / "cells" / name / patient / slide / f"{i}.png", rng)
    level1 = ingest(group_params(tmp_path / "cells", "folder"), tmp_path / "real1")
    level2 = ingest(DataParams(source=f"folder:{tmp_path / 'cells'}", image_size=28,
                               group={"by": "folder", "level": 2}), tmp_path / "real2")
    assert sorted(level1["group"].unique()) == ["P1", "P2", "P3"]
    assert sorted(level2["group"].unique()) == [f"P{p}/s{s}" for p in (1, 2, 3) for s in (1, 2)]


def original_and_copies(root: Path, n_per_class: int = 8) -> None:
    """Tissue tiles of two classes, each saved with its 7 flips and rotations (some re-encoded as JPEG)."""
    tissue = skimage.data.immunohistochemistry()
    corners = [(y, x) for y in range(0, 480, 40) for x in range(0, 480, 40)]
    for c, name in enumerate(("dab", "stroma")):
        for k in range(n_per_class):
            y, x = corners[c * n_per_class + k]
            tile = tissue[y:y + 40, x:x + 40]
            for t, transform in enumerate(TRANSFORMS):
                copy = orient(tile, transform)
                (root / name).mkdir(parents=True, exist_ok=True)
                if t % 3 == 2:
                    Image.fromarray(jpeg(copy, 90)).save(root / name / f"orig{k:02d}_{transform}.png")
                else:
                    Image.fromarray(copy).save(root / name / f"orig{k:02d}_{transform}.png")


def test_flipped_and_rotated_copies_of_an_original_never_straddle_a_split(tmp_path):
    original_and_copies(tmp_path / "cells")
    params = DataParams(source=f"folder:{tmp_path / 'cells'}", image_size=32)  # duplicates.action: auto = group
    df = ingest(params, tmp_path / "real", tmp_path / "report")

    original = df["origin"].str.extract(r"^(\w+)/orig(\d\d)_")[[0, 1]].agg("/".join, axis=1)
    assert original.nunique() == 16
    assert pd.Series(df["split"].to_numpy(), index=original).groupby(level=0).nunique().eq(1).all()
    assert df.groupby(original.to_numpy())["group"].nunique().eq(1).all()  # the copies joined one group
    assert set(df["split"]) == {"train", "val", "test"}
    metrics = json.loads((tmp_path / "report" / "duplicates.json").read_text())
    assert metrics["groups"] == 16
    assert all(v["images"] == 0 for k, v in metrics["pairs"].items() if k.split("-")[0] != k.split("-")[1])
    assert metrics["pairs"]["train-train"]["images"] == 7 * len(df[df["split"] == "train"]) // 8

    # Without grouping the same folder leaks: copies of one original land on both sides.
    warned = ingest(DataParams(source=params.source, image_size=32, duplicates={"action": "warn"}),
                    tmp_path / "warned", tmp_path / "warned_report")
    leaked = pd.Series(warned["split"].to_numpy(), index=original.to_numpy()).groupby(level=0).nunique()
    assert (leaked > 1).any()
    assert json.loads((tmp_path / "warned_report" / "duplicates.json").read_text())["pairs"]["train-test"]["images"] > 0


def test_duplicates_across_patients_join_their_groups(tmp_path):
    write_layout(tmp_path / "cells", {(name, f"P{p}"): 3 for name in ("a", "b") for p in range(6)}, "regex")
    # a turned copy of one of P1's images filed under P4 (a mix-up): P4 joins P1's group
    copy = Image.open(tmp_path / "cells" / "a" / "P1_0.png").transpose(Image.Transpose.ROTATE_90)
    copy.save(tmp_path / "cells" / "a" / "P4_9.png")
    df = ingest(group_params(tmp_path / "cells", "regex"), tmp_path / "real")
    p1_or_p4 = df["origin"].str.contains("/P[14]_")
    assert set(df.loc[p1_or_p4, "group"]) == {"P1"} and df.loc[p1_or_p4, "split"].nunique() == 1
    assert set(df.loc[~p1_or_p4, "group"]) == {"P0", "P2", "P3", "P5"}
    kept = ingest(group_params(tmp_path / "cells", "regex", duplicates={"action": "warn"}), tmp_path / "kept")
    assert set(kept["group"]) == {f"P{p}" for p in range(6)}


@pytest.mark.parametrize("rule, setup, message", [
    ("folder", lambda root: save_png(root / "a" / "loose.png", np.random.default_rng(9)),
     r"1 image\(s\) are not inside a sub-folder 1 level\(s\) below their class folder: 'a/loose.png'"),
    ("regex", lambda root: save_png(root / "b" / "nobody_1.png", np.random.default_rng(9)),
     r"finds no \(or an empty\) group in the file names of 1 image\(s\): 'b/nobody_1.png'"),
    ("csv", lambda root: save_png(root / "b" / "extra.png", np.random.default_rng(9)),
     r"has no line for 1 image\(s\): 'b/extra.png'; add a line"),
    ("csv", lambda root: csv_of(root).write_text("path,patient\n"), r"the first line must name the columns file,group"),
    ("csv", lambda root: csv_of(root).unlink(), r"no such file"),
    ("csv", lambda root: csv_of(root).write_text(csv_of(root).read_text() + "a/img000.png,P7\n"),
     r"'a/img000.png' is given two groups, 'P0' and 'P7'; keep one"),
])
def test_images_the_rule_cannot_place_are_named_errors(tmp_path, rule, setup, message):
    write_layout(tmp_path / "cells", {(name, f"P{p}"): 2 for name in ("a", "b") for p in range(4)}, rule)
    setup(tmp_path / "cells")
    with pytest.raises(DataError, match=message):
        ingest(group_params(tmp_path / "cells", rule), tmp_path / "real")
    assert not (tmp_path / "real").exists()


def test_too_few_groups_is_an_error(tmp_path):
    write_layout(tmp_path / "cells", {(name, patient): 4 for name in ("a", "b") for patient in ("P1", "P2")}, "folder")
    with pytest.raises(DataError, match="the 2 group.s. of this folder cannot be shared out so that val gets one"):
        ingest(group_params(tmp_path / "cells", "folder"), tmp_path / "real")
    df = ingest(group_params(tmp_path / "cells", "folder", val_fraction=0.0), tmp_path / "real")
    assert df.groupby("split")["group"].nunique().to_dict() == {"test": 1, "train": 1}


def test_groups_too_big_for_a_fraction_still_give_every_split_some_and_say_so(tmp_path, caplog):
    layout = {("a", "P1"): 4, ("b", "P1"): 4, ("a", "P2"): 4, ("b", "P2"): 4, ("a", "P3"): 1}
    write_layout(tmp_path / "cells", layout, "folder")
    with caplog.at_level(logging.WARNING):
        df = ingest(group_params(tmp_path / "cells", "folder"), tmp_path / "real")
    assert df.groupby("split")["group"].unique().map(sorted).to_dict() == {"test": ["P3"], "train": ["P1"],
                                                                           "val": ["P2"]}
    assert "no group fitted the val fraction (0.15); val gets the smallest group that can go (8 image(s))" in caplog.text
    assert "class 'b' has no test images: its 8 image(s) lie in 2 group(s) that went elsewhere" in caplog.text


@pytest.mark.parametrize("data, message", [
    ({"group": {"by": "regex"}}, "by = regex needs a pattern"),
    ({"group": {"by": "regex", "pattern": "^P\\d+_"}}, "needs a named group (?P<group>...)"),
    ({"group": {"by": "regex", "pattern": "(?P<group>"}}, "not a valid regular expression"),
    ({"group": {"by": "csv"}}, "by = csv needs csv"),
    ({"source": "medmnist:bloodmnist", "group": {"by": "folder"}}, "grouping applies to folder: sources only"),
    ({"duplicates": {"action": "copy"}}, "data.duplicates.action = 'copy'"),
])
def test_bad_group_settings_are_config_errors(data, message):
    with pytest.raises(ConfigError) as err:
        params_from_mapping({"data": data}, source="params.yaml")
    assert message in str(err.value)


def test_the_group_reaches_the_package_metadata_and_the_sql_dump(tmp_path):
    layout = {(name, f"P'{p}"): 2 for name in ("a", "b") for p in range(5)}  # a quote in every group name
    write_layout(tmp_path / "cells", layout, "folder")
    real = ingest(group_params(tmp_path / "cells", "folder"), tmp_path / "real")
    synthetic = write_synthetic_folder(tmp_path / "synthetic", ("a", "b"), 2, 28, seed=1)
    write_record(tmp_path / "gan", {"arch": "dcgan", "class_names": ["a", "b"], "n_classes": 2, "epoch": 1,
                                    "image_size": 28, "latent_dim": 8, "width": 4,
                                    "params": {"batch_size": 4, "g_lr": 2e-4, "d_lr": 2e-4, "loss": "bce", "epochs": 1}})
    (tmp_path / "qa.json").write_text(json.dumps(qa_metrics(("a", "b"), True, synthetic)))
    metadata = build_package(params_from_mapping({"qa": {"enforce": True}}), tmp_path / "real", synthetic,
                             tmp_path / "gan", tmp_path / "qa.json", tmp_path / "package", revision="test")

    is_real = metadata["source"] == "real"
    assert metadata.loc[is_real].set_index("id")["group"].to_dict() == real.set_index("id")["group"].to_dict()
    assert metadata.loc[~is_real, "group"].isna().all()
    connection = sqlite3.connect(":memory:")
    connection.executescript((tmp_path / "package" / "sql" / "sqlite.sql").read_text(encoding="utf-8"))
    rows = dict(connection.execute("SELECT id, group_name FROM images").fetchall())
    assert {k: v for k, v in rows.items() if v is not None} == real.set_index("id")["group"].to_dict()
