"""What ingest promises for every source: determinism, whole-folder replacement, caps, the
summary log, and one-line errors from the stage script and the CLI."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from histosynth.cli import app
from histosynth.config.data import DataParams
from histosynth.data.ingest import capped_indices, ingest
from histosynth.entry import EXIT_INPUT
from histosynth.output_policy import MARKER, mark_as_output
from test_ingest_folder import save_images

REPO = Path(__file__).resolve().parents[1]


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def class_folders(root: Path) -> Path:
    for label, name in enumerate(["tumour", "normal", "stroma"]):
        save_images(root / name, 7, "RGB", ".jpg", seed=label, size=(90, 70))
    return root


def test_same_params_give_byte_identical_outputs(tmp_path):
    for params in (DataParams(), DataParams(source=f"folder:{class_folders(tmp_path / 'cells')}", image_size=28)):
        ingest(params, tmp_path / "one")
        ingest(params, tmp_path / "two")
        first, second = tree_digest(tmp_path / "one"), tree_digest(tmp_path / "two")
        assert first == second and "manifest.parquet" in first and len(first) > 20


def test_a_new_run_replaces_the_whole_output_folder(tmp_path):
    out = tmp_path / "real"
    (out / "train" / "old_class").mkdir(parents=True)
    (out / "train" / "old_class" / "stale.png").write_bytes(b"old")
    mark_as_output(out)  # an earlier ingest's output
    df = ingest(DataParams(source=f"folder:{class_folders(tmp_path / 'cells')}"), out)
    assert not (out / "train" / "old_class").exists()
    assert sorted(tree_digest(out)) == sorted([*df["path"], "manifest.parquet", MARKER])


def test_manifest_md5s_are_the_written_files(tmp_path):
    df = ingest(DataParams(source=f"folder:{class_folders(tmp_path / 'cells')}"), tmp_path / "real")
    digests = tree_digest(tmp_path / "real")
    assert all(digests[row.path] == row.md5 for row in df.itertuples())


def test_counts_per_class_and_split_are_logged(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        df = ingest(DataParams(source=f"folder:{class_folders(tmp_path / 'cells')}"), tmp_path / "real")
    table = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("images per class and split"))
    lines = table.splitlines()
    assert lines[1].split() == ["split", "train", "val", "test", "total"]
    tumour = next(line for line in lines if line.startswith("tumour"))
    counts = df[df["class_name"] == "tumour"].groupby("split").size()
    assert tumour.split()[1:] == [str(counts["train"]), str(counts["val"]), str(counts["test"]), "7"]
    assert lines[-1].split()[-1] == str(len(df))


def test_capped_indices_keep_at_most_cap_per_label_in_source_order():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 6)
    keep = capped_indices(labels, 4, (0, 2, 0))
    assert np.bincount(labels[keep]).tolist() == [4, 3, 4]
    assert (np.diff(keep) > 0).all()
    assert (capped_indices(labels, 4, (0, 2, 0)) == keep).all()
    assert (capped_indices(labels, 0, (0, 2, 0)) == np.arange(len(labels))).all()
    assert any((capped_indices(labels, 4, (seed, 2, 0)) != keep).any() for seed in range(1, 5))


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"data": {"source": f"folder:{tmp_path / 'nowhere'}"}}))
    result = CliRunner().invoke(app, ["ingest", "--params", str(params_file), "--out", str(tmp_path / "real")])
    assert result.exit_code == EXIT_INPUT
    assert result.output.strip().startswith("error: data.source = ") and "does not exist" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "real").exists()


@pytest.mark.slow
def test_stage_script_writes_data_real_from_params_yaml(tmp_path):
    class_folders(tmp_path / "cells")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"source": "folder:cells", "image_size": 28}}))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "ingest.py")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "images per class and split" in proc.stderr
    assert len(list((tmp_path / "data" / "real").rglob("*.png"))) == 21

    for name in ("normal", "stroma"):  # one class left: unusable
        (tmp_path / "cells" / name).rename(tmp_path / name)
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "ingest.py")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == EXIT_INPUT
    assert proc.stderr.strip().splitlines() == [
        f"error: {(tmp_path / 'cells').resolve()}: found only the class folder 'tumour'; a folder source needs"
        " at least two sub-folders, one per class, each holding that class's images"]
    assert len(list((tmp_path / "data" / "real").rglob("*.png"))) == 21  # the last good output stays
