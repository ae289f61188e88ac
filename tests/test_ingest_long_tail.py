"""data.long_tail: the named classes' train images cut to a fraction at ingest, seeded and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from histosynth.config import params_from_mapping
from histosynth.config.data import DataParams
from histosynth.data.ingest import ingest, long_tail_indices
from histosynth.errors import ConfigError, DataError
from test_ingest_folder import save_images

CLASSES = ("tumour", "normal", "stroma")


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cells")
    for label, name in enumerate(CLASSES):
        save_images(root / name, 30, "RGB", ".png", seed=label, size=(40, 40))
    return root


def params(cells: Path, **long_tail: object) -> DataParams:
    return DataParams.model_validate({"source": f"folder:{cells}", "val_fraction": 0.2, "test_fraction": 0.2,
                                      "long_tail": long_tail})


def counts(manifest, split: str) -> dict[str, int]:
    rows = manifest[manifest["split"] == split]
    return {name: int((rows["class_name"] == name).sum()) for name in CLASSES}


def test_the_rare_classes_keep_a_tenth_of_their_train_images_and_every_val_and_test_image(cells, tmp_path):
    full = ingest(params(cells), tmp_path / "full")
    cut = ingest(params(cells, classes=["stroma", "normal"], keep=0.1), tmp_path / "cut", tmp_path / "report")
    before, after = counts(full, "train"), counts(cut, "train")
    assert after == {"tumour": before["tumour"], "normal": round(0.1 * before["normal"]),
                     "stroma": round(0.1 * before["stroma"])}
    for split in ("val", "test"):
        assert counts(cut, split) == counts(full, split)
    kept = set(cut.loc[cut["split"] == "train", "id"])
    assert kept <= set(full.loc[full["split"] == "train", "id"])  # a subset, not other images
    record = json.loads((tmp_path / "report" / "duplicates.json").read_text())["long_tail"]
    assert record == {"classes": ["stroma", "normal"], "keep": 0.1,
                      "train_images": {"stroma": after["stroma"], "normal": after["normal"]}}


def test_the_cut_is_seeded_by_data_seed(cells, tmp_path):
    def kept(seed: int, name: str) -> set[str]:
        manifest = ingest(params(cells, classes=["stroma"], keep=0.5).model_copy(update={"seed": seed}),
                          tmp_path / name)
        return set(manifest.loc[(manifest["split"] == "train") & (manifest["class_name"] == "stroma"), "id"])

    assert kept(0, "a") == kept(0, "b") != kept(1, "c")


def test_long_tail_indices_keep_at_least_one_image_and_leave_other_classes_alone():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 3)
    keep = np.arange(len(labels))
    cut = long_tail_indices(labels, keep, [1, 2], 0.1, (0, 3))
    assert np.array_equal(cut[:10], np.arange(10)) and np.all(np.diff(cut) > 0)
    assert np.bincount(labels[cut]).tolist() == [10, 1, 1]
    assert np.array_equal(long_tail_indices(labels, keep, [1], 1.0, (0, 3)), keep)


def test_a_class_the_source_does_not_have_is_an_input_error_listing_its_classes(cells, tmp_path):
    with pytest.raises(DataError, match=r"data.long_tail.classes names 'strom', which .* its classes: "
                                        r"'normal', 'stroma', 'tumour'"):
        ingest(params(cells, classes=["strom"]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("long_tail", "message"), [
    ({"keep": 0}, r"data.long_tail.keep = 0: Input should be greater than 0"),
    ({"keep": 1.5}, r"data.long_tail.keep = 1.5: Input should be less than or equal to 1"),
    ({"classes": ["a", "a"]}, r"data.long_tail.classes = \['a', 'a'\]: class names must be distinct"),
    ({"classes": "a"}, r"data.long_tail.classes = 'a': Input should be a valid list"),
    ({"share": 0.1}, r"data.long_tail: unknown key\(s\) share; allowed keys here: classes, keep"),
])
def test_bad_long_tail_values_are_named(long_tail: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        params_from_mapping({"data": {"long_tail": long_tail}})
