"""The augment stage end to end on a tiny ingested folder (3 classes x 24 train images, 32 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histosynth.augment import augment
from histosynth.augment.preview import PREVIEW_CELL_PX, PREVIEW_COLUMNS, PREVIEW_PADDING
from histosynth.config.augment import AugmentParams
from histosynth.errors import DataError
from histosynth.images import md5_file, read_png_rgb
from histosynth.manifest import read_manifest, write_manifest
from histosynth.output_policy import MARKER

OPS = ("rotate", "flip", "zoom", "skew", "distortion")
TRAIN_PER_CLASS = 24


def params(**changes: object) -> AugmentParams:
    return AugmentParams.model_validate({"per_class": 40, **changes})


def only(name: str, **settings: float) -> AugmentParams:
    return params(**{op: {"p": 0.0} for op in OPS} | {name: {"p": 1.0, **settings}})


def run(real: Path, out: Path, p: AugmentParams, workers: int = 2) -> pd.DataFrame:
    return augment(p, real, out / "augmented", out / "preview", workers=workers)


def real_train(real: Path) -> pd.DataFrame:
    df = read_manifest(real)
    return df[df["split"] == "train"].set_index("id")


def pixels(folder: Path, rel: str) -> np.ndarray:
    return read_png_rgb(folder / rel)


def test_writes_exactly_per_class_images_with_originals_byte_identical(tiny_real_dir: Path, tmp_path: Path) -> None:
    manifest = run(tiny_real_dir, tmp_path, params(per_class=40))
    out = tmp_path / "augmented"
    assert read_manifest(out).equals(manifest)  # written, and valid against the schema
    real = real_train(tiny_real_dir)
    for name, group in manifest.groupby("class_name"):
        assert len(group) == 40
        assert (group["source"] == "original").sum() == TRAIN_PER_CLASS
        folders = {Path(p).parent.name for p in group["path"]}
        assert folders == {Path(real.loc[real["class_name"] == name, "path"].iloc[0]).parent.name}
        assert len(list((out / folders.pop()).glob("*.png"))) == 40
    assert (manifest["split"] == "train").all()
    for row in manifest.itertuples():
        assert md5_file(out / row.path) == row.md5
    originals = manifest[manifest["source"] == "original"]
    assert sorted(originals["id"]) == sorted(real.index)
    assert (originals["md5"].to_numpy() == real.loc[originals["id"], "md5"].to_numpy()).all()
    assert (originals["origin"] == originals["id"]).all() and (originals["ops"] == "").all()


def test_children_come_evenly_from_originals_of_their_class(tiny_real_dir: Path, tmp_path: Path) -> None:
    manifest = run(tiny_real_dir, tmp_path, params(per_class=60))
    children = manifest[manifest["source"] == "affine"]
    real = real_train(tiny_real_dir)
    assert (real.loc[children["origin"], "class_name"].to_numpy() == children["class_name"].to_numpy()).all()
    per_parent = children.groupby("origin").size()
    assert len(per_parent) == 3 * TRAIN_PER_CLASS and per_parent.min() >= 1 and per_parent.max() <= 2
    assert children["ops"].str.len().gt(0).mean() > 0.9  # defaults: each op with p=0.5
    # Only a drawn continuous operation makes a new image for sure; with none (1 in 32 at the
    # defaults, as in Augmentor) or a flip only, a child may repeat its parent or a sibling.
    continuous = children["ops"].str.contains("rotate|zoom|skew|distort")
    assert manifest.loc[children.index[continuous], "md5"].is_unique
    assert not set(children.loc[continuous, "md5"]) & set(manifest["md5"].drop(children.index[continuous]))


def test_fewer_wanted_than_originals_keeps_a_seeded_subset(tiny_real_dir: Path, tmp_path: Path) -> None:
    manifest = run(tiny_real_dir, tmp_path / "a", params(per_class=10))
    assert manifest.groupby("class_name").size().eq(10).all()
    assert (manifest["source"] == "original").all()
    assert set(manifest["id"]) <= set(real_train(tiny_real_dir).index)
    again = run(tiny_real_dir, tmp_path / "b", params(per_class=10))
    assert again["id"].tolist() == manifest["id"].tolist()
    other_seed = run(tiny_real_dir, tmp_path / "c", params(per_class=10, seed=1))
    assert set(other_seed["id"]) != set(manifest["id"])


def test_same_params_give_identical_files_whatever_the_worker_count(tiny_real_dir: Path, tmp_path: Path) -> None:
    p = params(per_class=36)
    one = run(tiny_real_dir, tmp_path / "one", p, workers=1)
    two = run(tiny_real_dir, tmp_path / "two", p, workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert (tmp_path / "one/augmented/manifest.parquet").read_bytes() == \
        (tmp_path / "two/augmented/manifest.parquet").read_bytes()
    other = run(tiny_real_dir, tmp_path / "other", params(per_class=36, seed=5))
    changed = one["md5"] != other["md5"]
    assert changed[one["source"] == "affine"].all() and not changed[one["source"] == "original"].any()


def test_no_operation_means_children_equal_their_parents(tiny_real_dir: Path, tmp_path: Path) -> None:
    manifest = run(tiny_real_dir, tmp_path, params(**{op: {"p": 0.0} for op in OPS}))
    children = manifest[manifest["source"] == "affine"]
    real = real_train(tiny_real_dir)
    assert len(children) == 3 * (40 - TRAIN_PER_CLASS) and (children["ops"] == "").all()
    for row in children.itertuples():
        parent = pixels(tiny_real_dir, real.loc[row.origin, "path"])
        assert np.array_equal(pixels(tmp_path / "augmented", row.path), parent)


def test_flip_only_gives_flipped_parents(tiny_real_dir: Path, tmp_path: Path) -> None:
    manifest = run(tiny_real_dir, tmp_path, only("flip"))
    children = manifest[manifest["source"] == "affine"]
    real = real_train(tiny_real_dir)
    assert set(children["ops"]) == {"flip(left-right)", "flip(top-bottom)"}
    for row in children.itertuples():
        parent = pixels(tiny_real_dir, real.loc[row.origin, "path"])
        axis = 1 if row.ops == "flip(left-right)" else 0
        assert np.array_equal(pixels(tmp_path / "augmented", row.path), np.flip(parent, axis))


@pytest.mark.parametrize("op, settings, label", [
    ("rotate", {"max_degrees": 10}, "rotate("),
    ("zoom", {"min": 1.2, "max": 1.5}, "zoom("),
    ("skew", {"magnitude": 0.7}, "skew("),
    ("distortion", {"grid": 8, "magnitude": 8}, "distort(8x8,"),
])
def test_each_operation_alone_changes_every_child(tiny_real_dir: Path, tmp_path: Path, op: str,
                                                  settings: dict, label: str) -> None:
    manifest = run(tiny_real_dir, tmp_path, only(op, **settings))
    children = manifest[manifest["source"] == "affine"]
    real = real_train(tiny_real_dir)
    assert children["ops"].str.startswith(label).all() and not children["ops"].str.contains(r"\|").any()
    for row in children.itertuples():
        parent = pixels(tiny_real_dir, real.loc[row.origin, "path"])
        assert not np.array_equal(pixels(tmp_path / "augmented", row.path), parent)


def test_distortion_of_magnitude_zero_is_the_identity(tiny_real_dir: Path, tmp_path: Path) -> None:
    manifest = run(tiny_real_dir, tmp_path, only("distortion", magnitude=0))
    children = manifest[manifest["source"] == "affine"]
    real = real_train(tiny_real_dir)
    assert children["ops"].eq("distort(8x8,0.0)").all()
    for row in children.itertuples():
        assert row.md5 == real.loc[row.origin, "md5"]


def test_previews_show_originals_above_their_children(tiny_real_dir: Path, tmp_path: Path) -> None:
    run(tiny_real_dir, tmp_path, params(per_class=TRAIN_PER_CLASS * 3))  # two children per original
    previews = sorted(p.name for p in (tmp_path / "preview").iterdir() if p.name != MARKER)
    assert previews == ["blue_noise.png", "green_stripes.png", "red_blobs.png"]
    cell = 32 * round(PREVIEW_CELL_PX / 32)
    with Image.open(tmp_path / "preview" / "red_blobs.png") as im:
        assert im.size == (PREVIEW_COLUMNS * (cell + PREVIEW_PADDING) + PREVIEW_PADDING,
                           3 * (cell + PREVIEW_PADDING) + PREVIEW_PADDING)


def test_missing_real_folder_says_to_run_ingest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dvc repro ingest"):
        run(tmp_path / "nothing", tmp_path, params())
    assert not (tmp_path / "augmented").exists()


def test_real_folder_without_train_split_is_an_error(tiny_real_dir: Path, tmp_path: Path) -> None:
    df = read_manifest(tiny_real_dir)
    write_manifest(df[df["split"] != "train"], tiny_real_dir)
    with pytest.raises(DataError, match="no 'train' images.*ingest"):
        run(tiny_real_dir, tmp_path, params())


def test_class_without_train_images_is_named(tiny_real_dir: Path, tmp_path: Path) -> None:
    df = read_manifest(tiny_real_dir)
    write_manifest(df[(df["split"] != "train") | (df["class_name"] != "green stripes")], tiny_real_dir)
    with pytest.raises(DataError, match="'green stripes'.*ingest"):
        run(tiny_real_dir, tmp_path, params())


def test_changed_original_is_reported_and_nothing_is_written(tiny_real_dir: Path, tmp_path: Path) -> None:
    path = tiny_real_dir / real_train(tiny_real_dir)["path"].iloc[3]
    image = read_png_rgb(path)
    Image.fromarray(255 - image).save(path)
    with pytest.raises(DataError, match="changed since ingest"):
        run(tiny_real_dir, tmp_path, params())
    assert not (tmp_path / "augmented").exists() and not (tmp_path / "preview").exists()
