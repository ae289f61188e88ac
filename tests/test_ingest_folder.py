"""folder:<path> with messy real files: what is read, skipped, ignored or refused, and the split."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from histosynth.config.data import DataParams
from histosynth.data.ingest import ingest
from histosynth.errors import DataError
from histosynth.fsutil import unique_safe_names
from histosynth.images import read_png_rgb
from histosynth.output_policy import MARKER, mark_as_output
from test_ingest_decode import header_only_png

ODD_NAMES = ("benign cells", "Épithélium d'été", 'say "a..b"')


def save_images(folder: Path, n: int, mode: str, suffix: str, seed: int, size=(48, 36)) -> list[Path]:
    """``n`` textured images of the given PIL mode and format in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
        im = rgb.convert("RGBA") if mode == "RGBA" else rgb.convert(mode)
        if mode == "I;16":
            im = Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257))
        path = folder / f"img {i:02d}{suffix}"
        im.save(path)
        paths.append(path)
    return paths


def messy_folder(root: Path, outside: Path) -> Path:
    """Three classes with odd names and mixed formats, plus everything that must be passed over."""
    a, b, c = (root / name for name in ODD_NAMES)
    save_images(a, 6, "RGB", ".png", seed=1)
    save_images(a, 2, "L", ".jpg", seed=2)
    save_images(a / "patient 7", 2, "I;16", ".tif", seed=3)  # images in a sub-folder belong to the class
    save_images(b, 6, "RGBA", ".PNG", seed=4)
    save_images(b, 4, "P", ".bmp", seed=5)
    save_images(c, 5, "CMYK", ".tiff", seed=6)
    save_images(c, 5, "RGB", ".jpeg", seed=7)

    (a / "empty.png").write_bytes(b"")
    (a / "broken.jpg").write_bytes((c / "img 00.jpeg").read_bytes()[:200])
    header_only_png(b / "bomb.png", 20_000, 20_000)
    (a / "notes.txt").write_text("scanned on the old microscope\n")
    (root / "README.md").write_text("one folder per class\n")
    (a / ".DS_Store").write_bytes(b"\x00\x01junk")
    (b / "._img 00.PNG").write_bytes(b"AppleDouble junk")
    save_images(root / ".thumbnails", 3, "RGB", ".png", seed=8)
    save_images(a / ".cache", 2, "RGB", ".png", seed=9)

    save_images(outside, 3, "RGB", ".png", seed=10)
    os.symlink(outside / "img 00.png", a / "from elsewhere.png")
    os.symlink(outside, root / "linked class")
    os.symlink(a / "img 00.png", c / "duplicate.png")
    return root


def folder_params(root: Path | str, **extra) -> DataParams:
    return DataParams(source=f"folder:{root}", **{"val_fraction": 0.2, "test_fraction": 0.2, **extra})


def test_messy_folder_reads_what_it_should_and_names_what_it_skips(tmp_path, caplog):
    root = messy_folder(tmp_path / "cells", tmp_path / "elsewhere")
    with caplog.at_level(logging.INFO):
        df = ingest(folder_params(root), tmp_path / "real")

    names = sorted(ODD_NAMES)
    assert df.groupby("label")["class_name"].first().tolist() == names
    folders = dict(zip(names, unique_safe_names(names)))
    assert set(folders.values()) == {"benign_cells", "epithelium_d_ete", "say_a_b"}
    assert all(row.path.startswith(f"{row.split}/{folders[row.class_name]}/") for row in df.itertuples())
    assert df.groupby("class_name").size().to_dict() == {n: 10 for n in names}
    assert df.groupby("split").size().to_dict() == {"train": 18, "val": 6, "test": 6}  # 6/2/2 per class
    assert df["origin"].str.contains("patient 7/").sum() == 2

    for rel in df["path"]:
        image = read_png_rgb(tmp_path / "real" / rel)
        assert image.shape == (32, 32, 3)
    with Image.open(tmp_path / "real" / df["path"].iloc[0]) as im:
        assert im.mode == "RGB"

    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for skipped in ("empty.png", "broken.jpg", "bomb.png", "from elsewhere.png", "linked class", "duplicate.png"):
        assert skipped in warnings
    assert "skipped 3 of 33 image files" in warnings
    infos = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert "notes.txt" in infos and "README.md" in infos
    everything = caplog.text + " ".join(df["origin"])
    for hidden in (".DS_Store", "._img", ".thumbnails", ".cache"):
        assert hidden not in everything
    assert not df["origin"].str.contains("elsewhere|duplicate").any()


def test_split_is_stratified_seeded_and_reproducible(tmp_path):
    root = tmp_path / "cells"
    for label, name in enumerate(["a", "b"]):
        save_images(root / name, 20, "RGB", ".png", seed=label)
    first = ingest(folder_params(root, val_fraction=0.15, test_fraction=0.25), tmp_path / "one")
    counts = first.groupby(["class_name", "split"]).size().unstack()
    assert counts.loc["a"].to_dict() == {"test": 5, "train": 12, "val": 3}  # 0.25*20, round(0.15*20)
    assert ingest(folder_params(root, val_fraction=0.15, test_fraction=0.25), tmp_path / "two").equals(first)
    reseeded = ingest(folder_params(root, val_fraction=0.15, test_fraction=0.25, seed=5), tmp_path / "three")
    assert set(reseeded.loc[reseeded["split"] == "test", "id"]) != set(first.loc[first["split"] == "test", "id"])


def test_relative_source_paths_resolve_against_the_current_directory(tmp_path, monkeypatch):
    for name in ("x", "y"):
        save_images(tmp_path / "sets" / "cells" / name, 4, "RGB", ".png", seed=len(name))
    monkeypatch.chdir(tmp_path / "sets")
    df = ingest(folder_params("cells", val_fraction=0.25, test_fraction=0.25), tmp_path / "real")
    assert len(df) == 8 and df["origin"].str.fullmatch(r"[xy]/img \d\d\.png").all()  # relative to the source


def two_classes(root: Path, n_b: int = 4) -> Path:
    save_images(root / "a", 4, "RGB", ".png", seed=0)
    (root / "b").mkdir(parents=True, exist_ok=True)
    save_images(root / "b", n_b, "RGB", ".png", seed=1)
    return root


def a_file_instead(root: Path) -> Path:
    root.write_text("not a folder")
    return root


def no_class_folders(root: Path) -> Path:
    root.mkdir()
    (root / "notes.txt").write_text("images go in class folders")
    return root


def single_class(root: Path) -> Path:
    save_images(root / "only", 6, "RGB", ".png", seed=0)
    return root


def unreadable_class(root: Path) -> Path:
    two_classes(root, n_b=0)
    (root / "b" / "x.png").write_bytes(b"")
    (root / "b" / "y.tif").write_bytes(b"II*\x00")
    return root


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root, "does not exist"),
        (a_file_instead, "is not a folder"),
        (no_class_folders, "found no class folders"),
        (single_class, "found only the class folder 'only'; a folder source needs at least two"),
        (lambda root: two_classes(root, n_b=0), "class folder .*/b: has no image files"),
        (unreadable_class, "class folder .*/b: all 2 image files were unreadable"),
        (lambda root: two_classes(root, n_b=2),
         r"class 'b' has 2 usable image\(s\): too few for data.val_fraction = 0.2 and data.test_fraction = 0.2"),
    ],
    ids=["missing", "a-file", "no-classes", "single-class", "empty-class", "unreadable-class", "too-few"],
)
def test_unusable_folders_are_one_line_data_errors_that_leave_the_output_alone(tmp_path, make, message):
    out = tmp_path / "real"
    mark_as_output(out)  # the last good output, written by histosynth
    (out / "previous.txt").write_text("the last good output")
    root = make(tmp_path / "cells")
    with pytest.raises(DataError, match=message) as err:
        ingest(folder_params(root), out)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "previous.txt"])
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
