"""Untrusted images and side files (issue 20): every reader opens a fixed list of image formats
and plain files only, so a file that lies about its kind is refused in one line and nothing hangs.

- An EPS/PostScript file named .png never reaches Ghostscript (a `gs` that records its calls is
  put first on PATH: it must never run), in a folder: source, a package read by load_package and
  by `histosynth benchmark --package`; a GIF saved over a package PNG is refused too.
- A FIFO among data/real does not hang `package`; a FIFO as data.group.csv does not hang `ingest`;
  a catastrophic data.group.pattern is stopped.
The tests that could hang carry a timeout: on failure they stop instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import EpsImagePlugin, Image

from cli_run import invoke, one_error
from histosynth.data import grouping
from histosynth.entry import EXIT_CONFIG, EXIT_INPUT, EXIT_OK
from histosynth.errors import DataError
from histosynth.package import load_package
from package_inputs import write_package_inputs
from test_hostile_package import first_image
from test_ingest_folder import save_images
from test_verify import built, package  # noqa: F401 (fixtures: a small package, a private copy to damage)

# A real, tiny Encapsulated PostScript file: PIL identifies it as EPS and renders it with Ghostscript.
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n%%EndComments\n"
       b"newpath 0 0 moveto 28 28 lineto stroke\nshowpage\n%%EOF\n")


@pytest.fixture
def ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `gs` first on PATH, as an installed Ghostscript would be found, that writes its arguments to
    the file returned and succeeds; PIL forgets any Ghostscript it looked up before."""
    calls = tmp_path / "gs_calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\necho \"$@\" >> '{calls}'\nexit 0\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return calls


def test_the_fake_ghostscript_is_what_pil_would_run(ghostscript: Path, tmp_path: Path) -> None:
    """Without a list of formats PIL runs the `gs` on PATH for an EPS file: the probe is real."""
    (tmp_path / "x.png").write_bytes(EPS)
    with pytest.raises(OSError), Image.open(tmp_path / "x.png") as im:
        im.load()
    assert ghostscript.is_file()


def test_an_eps_file_in_a_folder_source_never_reaches_ghostscript(ghostscript: Path, tmp_path: Path) -> None:
    source = tmp_path / "cells"
    for name, seed in (("a", 1), ("b", 2)):
        save_images(source / name, 5, "RGB", ".png", seed=seed)
    evil = source / "a" / "slide.png"
    evil.write_bytes(EPS)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"source": f"folder:{source}", "image_size": 28,
                                               "val_fraction": 0.2, "test_fraction": 0.2}}))
    code, output = invoke("ingest", "--params", str(params), "--out", str(tmp_path / "real"))
    assert code == EXIT_OK, output
    assert f"skipped {evil}: not a readable image (no PNG, JPEG, TIFF or BMP image in its bytes" in output
    assert not ghostscript.exists()


def test_an_eps_or_gif_in_a_package_is_refused_by_every_reader(ghostscript: Path, package: Path,
                                                               tmp_path: Path) -> None:
    eps_image = first_image(package)
    eps_image.write_bytes(EPS)
    refused = rf"^{eps_image}: not a readable image \(no PNG image in its bytes.*check the package with `histosynth " \
              r"verify`"
    with pytest.raises(DataError, match=refused):
        load_package(package).image_set(split="train")
    params = tmp_path / "params.yaml"
    params.write_text("benchmark: {seeds: [0], steps: 1, eval_every: 1}\naugment: {}\n")
    code, output = invoke("benchmark", "--params", str(params), "--package", str(package), "--augmented",
                          str(tmp_path / "nowhere"), "--out", str(tmp_path / "bench"))
    assert code == EXIT_INPUT
    assert one_error(output).startswith(f"error: {eps_image}: not a readable image (no PNG image")
    assert not ghostscript.exists() and not (tmp_path / "bench").exists()

    gif_image = first_image(package, kind="syn_")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(gif_image, format="GIF")
    with pytest.raises(DataError, match=rf"^{gif_image}: not a readable image \(no PNG image "):
        list(load_package(package).images(source="synthetic"))


@pytest.mark.timeout(120)
def test_a_fifo_among_the_real_images_does_not_hang_package(tmp_path: Path) -> None:
    inputs = write_package_inputs(tmp_path / "inputs", per_split=1, n_synthetic=2)
    fifo = sorted((inputs.real / "train").rglob("*.png"))[0]
    fifo.unlink()
    os.mkfifo(fifo)
    params = tmp_path / "params.yaml"
    params.write_text("package: {}\nqa: {enforce: true}\ndata: {source: builtin:ihc}\n")
    out = tmp_path / "package"
    code, output = invoke("package", "--params", str(params), "--real", str(inputs.real), "--synthetic",
                          str(inputs.synthetic), "--gan", str(inputs.gan), "--qa-metrics", str(inputs.qa_metrics),
                          "--out", str(out))
    assert code == EXIT_INPUT
    assert one_error(output) == f"error: {fifo}: a FIFO, not a plain file (refused); rerun the stage that wrote it " \
                                "(`dvc repro`)"
    assert not out.exists() and not list(tmp_path.glob(".package.tmp-*"))


def group_source(tmp_path: Path, group: dict) -> Path:
    """A folder: source of two classes whose file names carry a patient id, and its params."""
    source = tmp_path / "cells"
    for name, seed in (("a", 1), ("b", 2)):
        for i, path in enumerate(save_images(source / name, 6, "RGB", ".png", seed=seed)):
            path.rename(path.with_name(f"P{i % 3}_{'a' * 40}_{name}{i}.png"))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"source": f"folder:{source}", "image_size": 28, "val_fraction": 0.2,
                                               "test_fraction": 0.2, "group": group}}))
    return params


@pytest.mark.timeout(60)
def test_a_fifo_as_the_group_csv_does_not_hang_ingest(tmp_path: Path) -> None:
    fifo = tmp_path / "groups.csv"
    os.mkfifo(fifo)
    params = group_source(tmp_path, {"by": "csv", "csv": str(fifo)})
    code, output = invoke("ingest", "--params", str(params), "--out", str(tmp_path / "real"))
    assert code == EXIT_INPUT
    assert one_error(output).startswith(f"error: data.group.csv = '{fifo}': {fifo}: a FIFO, not a plain file (refused)")
    assert not (tmp_path / "real").exists()


@pytest.mark.timeout(60)
def test_a_catastrophic_group_pattern_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grouping, "PATTERN_SECONDS", 0.2)  # the budget is 2 s: a test need not wait that long
    params = group_source(tmp_path, {"by": "regex", "pattern": r"^P\d_(?P<group>(a|a)+)$"})
    code, output = invoke("ingest", "--params", str(params), "--out", str(tmp_path / "real"))
    assert code == EXIT_CONFIG
    line = one_error(output)
    assert line.startswith(r"error: data.group.pattern = '^P\\d_(?P<group>(a|a)+)$': stopped after ")
    assert "backtracks without end" in line
    assert not (tmp_path / "real").exists()


def test_every_image_reader_names_its_formats() -> None:
    """A new `Image.open` without `formats=` would let PIL try every decoder (Ghostscript included)."""
    src = Path(__file__).resolve().parents[1] / "src"
    calls = [(path, line) for path in src.rglob("*.py") for line in path.read_text(encoding="utf-8").splitlines()
             if "Image.open(" in line]
    assert calls and all("formats=" in line for _, line in calls), calls


def test_a_manifest_that_is_no_parquet_file_is_one_error_line(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "manifest.parquet").write_text("not parquet")  # was an ArrowInvalid traceback (exit 70)
    code, output = invoke("augment", "--real", str(real), "--out", str(tmp_path / "out"), "--preview",
                          str(tmp_path / "preview"))
    assert code == EXIT_INPUT
    assert one_error(output).startswith(f"error: {real / 'manifest.parquet'}: not a readable manifest (")
