"""medmnist:<flag> through the medmnist package, from .npz files in MedMNIST's own format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medmnist import INFO

from histosynth.config.data import DataParams
from histosynth.data.ingest import ingest
from histosynth.errors import ConfigError, DataError
from histosynth.images import read_png_rgb
from histosynth.manifest import read_manifest
from histosynth.output_policy import MARKER

REPO = Path(__file__).resolve().parents[1]
SHARED_BLOODMNIST = REPO.parent / "shared" / "data" / "bloodmnist.npz"
COUNTS = {"train": 5, "val": 2, "test": 3}  # per class


def write_medmnist_npz(path: Path, n_classes: int, size: int, rgb: bool = True, seed: int = 0) -> dict:
    """A small .npz laid out like MedMNIST's (uint8 images, (N, 1) labels); returns its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, per_class in COUNTS.items():
        labels = np.repeat(np.arange(n_classes, dtype=np.uint8), per_class)
        rng.shuffle(labels)
        shape = (len(labels), size, size, 3) if rgb else (len(labels), size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


def params(root: Path, flag: str = "bloodmnist", size: int = 28, **extra) -> DataParams:
    return DataParams(source=f"medmnist:{flag}", root=str(root), image_size=size, **extra)


def test_rgb_set_keeps_official_splits_labels_and_pixels(tmp_path):
    arrays = write_medmnist_npz(tmp_path / "raw" / "bloodmnist_64.npz", n_classes=8, size=64)
    df = ingest(params(tmp_path / "raw", size=64), tmp_path / "real")

    names = [INFO["bloodmnist"]["label"][str(i)] for i in range(8)]
    assert df.groupby("label")["class_name"].first().tolist() == names
    for split, per_class in COUNTS.items():
        part = df[df["split"] == split]
        assert len(part) == 8 * per_class
        index = part["origin"].str.extract(r"\[(\d+)\]$")[0].astype(int).to_numpy()
        assert (part["label"].to_numpy() == arrays[f"{split}_labels"][index, 0]).all()
        for row, i in zip(part.head(4).itertuples(), index):
            assert (read_png_rgb(tmp_path / "real" / row.path) == arrays[f"{split}_images"][i]).all()
    # MedMNIST's long label text becomes a safe folder name; the manifest keeps the text.
    assert any(p.startswith("train/immature_granulocytes_myelocytes") for p in df["path"])
    assert read_manifest(tmp_path / "real")["class_name"].isin(names).all()


def test_grayscale_set_becomes_rgb_with_equal_channels(tmp_path):
    arrays = write_medmnist_npz(tmp_path / "raw" / "organamnist.npz", n_classes=11, size=28, rgb=False)
    df = ingest(params(tmp_path / "raw", flag="organamnist"), tmp_path / "real")
    row = df[df["split"] == "val"].iloc[0]
    index = int(row["origin"].rsplit("[", 1)[1].rstrip("]"))
    rgb = read_png_rgb(tmp_path / "real" / row["path"])
    assert rgb.shape == (28, 28, 3)
    assert all((rgb[..., c] == arrays["val_images"][index]).all() for c in range(3))


def test_caps_apply_to_train_and_to_val_test_separately(tmp_path):
    write_medmnist_npz(tmp_path / "raw" / "bloodmnist.npz", n_classes=8, size=28)
    df = ingest(params(tmp_path / "raw", max_per_class=3, max_eval_per_class=1), tmp_path / "real")
    counts = df.groupby(["split", "label"]).size()
    assert (counts["train"] == 3).all() and (counts["val"] == 1).all() and (counts["test"] == 1).all()

    again = ingest(params(tmp_path / "raw", max_per_class=3, max_eval_per_class=1, seed=1), tmp_path / "real1")
    assert set(again["id"]) != set(df["id"])  # the seed picks a different subset


def test_missing_file_names_file_folder_and_the_download_switch(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / MARKER).write_text("")  # an output of an earlier run
    (tmp_path / "real" / "keep.txt").write_text("previous output")
    with pytest.raises(DataError) as err:
        ingest(params(tmp_path / "raw", size=128), tmp_path / "real")
    message = str(err.value)
    assert "bloodmnist_128.npz is missing" in message
    assert str((tmp_path / "raw").resolve()) in message
    assert "data.download: true" in message
    assert "\n" not in message
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == [MARKER, "keep.txt"]


def test_unknown_flag_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown MedMNIST flag; the usable .* ones are: pathmnist, .*bloodmnist"):
        ingest(params(tmp_path, flag="bloodmnst"), tmp_path / "real")


def test_multi_label_and_3d_sets_are_refused(tmp_path):
    for flag, reason in [("chestmnist", "chestmnist is multi-label"), ("organmnist3d", "organmnist3d is a 3D set")]:
        with pytest.raises(ConfigError, match=f"{reason}, but the pipeline needs one class per 2D image"):
            ingest(params(tmp_path, flag=flag), tmp_path / "real")


def test_sizes_medmnist_does_not_publish_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data.image_size = 32: .* 28, 64, 128, 224 pixels only"):
        ingest(params(tmp_path, size=32), tmp_path / "real")


def test_broken_npz_files_are_data_errors_and_leave_no_output(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "bloodmnist.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(DataError, match="not a readable MedMNIST .npz file"):
        ingest(params(raw), tmp_path / "real")

    arrays = write_medmnist_npz(raw / "bloodmnist.npz", n_classes=8, size=28)
    arrays["test_images"] = arrays["test_images"][:, :20, :20]  # wrong size in the last split read
    np.savez(raw / "bloodmnist.npz", **arrays)
    with pytest.raises(DataError, match=r"\(test\): expected uint8 images of shape \(N, 28, 28\[, 3\]\)"):
        ingest(params(raw), tmp_path / "real")
    assert not (tmp_path / "real").exists()
    assert not list(tmp_path.glob(".real*"))  # no temporary folder left behind either


@pytest.mark.skipif(not SHARED_BLOODMNIST.is_file(),
                    reason=f"real BloodMNIST file not present at {SHARED_BLOODMNIST} (only on the dev machine)")
def test_real_bloodmnist_file(tmp_path):
    p = DataParams(source="medmnist:bloodmnist", root=str(SHARED_BLOODMNIST.parent), image_size=28,
                   max_per_class=20, max_eval_per_class=5)
    df = ingest(p, tmp_path / "real")
    assert df.groupby("split")["label"].nunique().to_dict() == {"test": 8, "train": 8, "val": 8}
    assert len(df) == 8 * (20 + 5 + 5)
    assert df["class_name"].iloc[0] in INFO["bloodmnist"]["label"].values()
