"""The offline demo source builtin:ihc: stain rule, spatially disjoint splits, determinism."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata
from skimage.color import hed2rgb

from histosynth.config.data import DataParams
from histosynth.data.ingest import ingest
from histosynth.data.sources import builtin_ihc
from histosynth.data.sources.builtin_ihc import CLASS_NAMES, classify_tile
from histosynth.errors import ConfigError
from histosynth.images import read_png_rgb
from histosynth.manifest import SPLITS, read_manifest

REGION = re.compile(r"\[(\d+):(\d+), (\d+):(\d+)\]$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "real"
    ingest(DataParams(), out)
    return out


def stain_tile(h: np.ndarray, d: np.ndarray) -> np.ndarray:
    """An RGB uint8 tile with the given hematoxylin and DAB optical densities per pixel."""
    hed = np.stack([h, np.zeros_like(h), d], axis=-1)
    return np.round(hed2rgb(hed) * 255).astype(np.uint8)


def fraction_mask(fraction: float) -> np.ndarray:
    mask = np.zeros(32 * 32, bool)
    mask[: round(fraction * mask.size)] = True
    return mask.reshape(32, 32)


def labelled(name: str) -> int:
    return CLASS_NAMES.index(name)


def test_labels_follow_the_stain_rule_on_constructed_tiles():
    tissue_h = np.full((32, 32), 0.015)  # pale unstained tissue: not blank, not nuclear, no DAB
    none = np.zeros((32, 32))
    glass = np.full((32, 32), 0.004)

    assert classify_tile(stain_tile(glass, glass)) is None
    assert classify_tile(stain_tile(np.where(fraction_mask(0.6), 0.004, 0.015), none)) is None

    assert classify_tile(stain_tile(tissue_h, np.where(fraction_mask(0.55), 0.08, 0.0))) == labelled("dab_positive")
    assert classify_tile(stain_tile(tissue_h, np.where(fraction_mask(0.45), 0.08, 0.0))) is None  # gland border
    assert classify_tile(stain_tile(tissue_h, np.where(fraction_mask(0.15), 0.08, 0.0))) == labelled("stroma")

    nuclei = np.where(fraction_mask(0.20), 0.06, 0.015)
    assert classify_tile(stain_tile(nuclei, none)) == labelled("hematoxylin_rich")
    sparse_nuclei = np.where(fraction_mask(0.05), 0.06, 0.015)
    assert classify_tile(stain_tile(sparse_nuclei, none)) == labelled("stroma")
    assert classify_tile(stain_tile(tissue_h, none)) == labelled("stroma")

    # Nuclei under DAB count as DAB, not as nuclei: a DAB-majority tile stays dab_positive.
    both = fraction_mask(0.6)
    assert classify_tile(stain_tile(np.where(both, 0.06, 0.015), np.where(both, 0.08, 0.0))) == labelled("dab_positive")


def test_splits_share_no_pixel_and_every_class_is_in_every_split(demo):
    df = read_manifest(demo)
    height, width = skdata.immunohistochemistry().shape[:2]
    covered = {}
    for split in SPLITS:
        mask = np.zeros((height, width), bool)
        for origin in df.loc[df["split"] == split, "origin"]:
            y0, y1, x0, x1 = map(int, REGION.search(origin).groups())
            mask[y0:y1, x0:x1] = True
        covered[split] = mask
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not (covered[a] & covered[b]).any(), f"{a} and {b} share pixels"

    counts = df.groupby(["class_name", "split"]).size().unstack(fill_value=0)
    assert sorted(counts.index) == sorted(CLASS_NAMES)
    assert (counts["train"] >= 48).all(), counts  # a few dozen per class at least
    assert (counts[["val", "test"]] >= 10).all().all(), counts
    shares = df["split"].value_counts(normalize=True)
    assert 0.65 <= shares["train"] <= 0.80 and shares["val"] >= 0.1 and shares["test"] >= 0.1


def test_written_tiles_are_the_source_pixels_with_the_rule_s_label(demo):
    df = read_manifest(demo)
    image = skdata.immunohistochemistry()
    for row in df.sample(60, random_state=0).itertuples():
        y0, y1, x0, x1 = map(int, REGION.search(row.origin).groups())
        tile = image[y0:y1, x0:x1]
        assert (read_png_rgb(demo / row.path) == tile).all()
        assert classify_tile(tile) == row.label
        assert row.class_name == CLASS_NAMES[row.label]
        assert row.path == f"{row.split}/{row.class_name}/{row.id}.png"


def test_other_image_sizes_keep_the_same_tiles_and_labels(demo, tmp_path):
    big = ingest(DataParams(image_size=64), tmp_path / "real64")
    small = read_manifest(demo)
    assert big[["id", "label", "split"]].equals(small[["id", "label", "split"]])
    assert read_png_rgb(tmp_path / "real64" / big["path"].iloc[0]).shape == (64, 64, 3)


def test_the_demo_image_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert skdata.immunohistochemistry().shape == (512, 512, 3)


def test_unknown_builtin_names_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown built-in data set; available: builtin:ihc"):
        ingest(DataParams(source="builtin:colon"), tmp_path / "real")
    assert not (tmp_path / "real").exists()


def test_bands_hold_whole_tiles_only():
    assert builtin_ihc.band_of(0) == "train"
    assert builtin_ihc.band_of(352 - 32) == "train"
    assert builtin_ihc.band_of(352 - 16) is None  # rows 336..367 cross into val
    assert builtin_ihc.band_of(352) == "val"
    assert builtin_ihc.band_of(432 - 16) is None
    assert builtin_ihc.band_of(480) == "test"
