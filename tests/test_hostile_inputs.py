"""Broken or hostile inputs of the stages: one `error:` line and an exit status, or a clean run.

Issue 14 rows 3 (non-UTF-8 names under folder:), 4 (a text file named .png for qa), 6 (a broken
models/gan/record.json), 10 (temporary folders a kill -9 left) and 14 (a QA verdict for another
synthetic set).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cli_run import invoke, one_error
from conftest import write_image_folder
from hostile_outputs_helpers import run_in_progress
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.classifier import FeaturenetParams
from histosynth.entry import EXIT_INPUT, EXIT_OK
from histosynth.manifest import read_manifest
from histosynth.qa.run import run_qa
from histosynth.synthetic_set import SYNTHETIC_SET_KEY, synthetic_set_md5
from package_inputs import write_package_inputs, write_synthetic_folder
from test_generate_stage import make_checkpoint
from test_ingest_folder import save_images

REPO = Path(__file__).resolve().parents[1]
QA_PARAMS = "qa: {enforce: false, kl: {n_per_class: 6}, cas: {enabled: false}}\n"


def test_file_and_class_names_that_are_not_utf8_are_ingested(tmp_path: Path) -> None:
    source = tmp_path / "cells"
    bad_class = os.fsdecode(b"bad\xff\xfe class")
    for folder in ("good", bad_class):
        for path in save_images(source / folder, 4, "RGB", ".png", seed=len(folder)):
            path.rename(path.with_name(os.fsdecode(b"img\xff" + os.fsencode(path.name))))
    params = tmp_path / "params.yaml"
    params.write_text(f"data: {{source: 'folder:{source}', image_size: 28, val_fraction: 0.25, "
                      "test_fraction: 0.25}\n")
    code, output = invoke("ingest", "--params", str(params), "--out", str(tmp_path / "real"))
    assert code == EXIT_OK, output
    manifest = read_manifest(tmp_path / "real")
    assert sorted(manifest["class_name"].unique()) == ["bad\\xff\\xfe class", "good"]
    assert manifest["id"].is_unique and len(manifest) == 8
    assert all("\\xff" in origin for origin in manifest["origin"])


@pytest.fixture(scope="module")
def qa_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real images and a (one-epoch) feature net: enough for QA to run to the end."""
    root = tmp_path_factory.mktemp("qa")
    write_image_folder(root / "real", {"train": 8, "val": 4, "test": 4})
    train_featurenet(FeaturenetParams(epochs=1, width=4, batch_size=8, folds=2), root / "real", root / "featurenet")
    (root / "params.yaml").write_text(QA_PARAMS)
    return root


def plain_class_folders(real: Path, out: Path) -> Path:
    """A synthetic set made elsewhere: the real train images copied into plain class folders."""
    for path in (real / "train").rglob("*.png"):
        (out / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.parent.name / path.name)
    return out


def qa_cli(work: Path, synthetic: Path, out: Path) -> tuple[int, str]:
    return invoke("qa", "--params", str(work / "params.yaml"), "--real", str(work / "real"), "--synthetic",
                  str(synthetic), "--featurenet", str(work / "featurenet"), "--out", str(out))


def test_qa_reports_a_text_file_named_png_in_one_line(qa_work: Path, tmp_path: Path) -> None:
    synthetic = plain_class_folders(qa_work / "real", tmp_path / "theirs")
    notes = next(synthetic.iterdir()) / "notes.png"
    notes.write_text("these are not pixels\n")
    code, output = qa_cli(qa_work, synthetic, tmp_path / "qa")
    assert code == EXIT_INPUT
    assert one_error(output) == f"error: {notes}: not a readable image (no PNG, JPEG, TIFF or BMP image in its " \
                                "bytes, whatever its name says; other formats are not opened)"
    assert not (tmp_path / "qa").exists()


def test_qa_records_which_synthetic_set_it_judged(qa_work: Path, tmp_path: Path) -> None:
    params = params_from_mapping({"qa": {"enforce": False, "kl": {"n_per_class": 6}, "cas": {"enabled": False}}}).qa
    with_manifest = write_image_folder(tmp_path / "generated", {"train": 6}, seed=3, source="synthetic")
    plain = plain_class_folders(qa_work / "real", tmp_path / "theirs")
    for synthetic in (with_manifest, plain):
        result = run_qa(params, qa_work / "real", synthetic, qa_work / "featurenet", tmp_path / "qa")
        written = json.loads((tmp_path / "qa" / "metrics.json").read_text())
        assert written[SYNTHETIC_SET_KEY] == result.metrics[SYNTHETIC_SET_KEY] == synthetic_set_md5(synthetic)
    assert synthetic_set_md5(with_manifest) != synthetic_set_md5(plain)
    image = next(plain.rglob("*.png"))
    before = synthetic_set_md5(plain)
    image.write_bytes(next(with_manifest.rglob("*.png")).read_bytes())
    assert synthetic_set_md5(plain) != before  # any changed image is another set


PACKAGE_PARAMS = "package: {}\nqa: {enforce: true}\ndata: {source: builtin:ihc}\n"


def package_cli(inputs, out: Path, params: Path) -> tuple[int, str]:
    return invoke("package", "--params", str(params), "--real", str(inputs.real), "--synthetic",
                  str(inputs.synthetic), "--gan", str(inputs.gan), "--qa-metrics", str(inputs.qa_metrics),
                  "--out", str(out))


def test_package_refuses_a_qa_verdict_for_another_synthetic_set(tmp_path: Path) -> None:
    inputs = write_package_inputs(tmp_path / "inputs", per_split=1, n_synthetic=2)
    classes = tuple(read_manifest(inputs.synthetic).drop_duplicates("label")["class_name"])
    other = write_synthetic_folder(tmp_path / "other", classes, 2, 28, seed=9)
    metrics = json.loads(inputs.qa_metrics.read_text())
    inputs.qa_metrics.write_text(json.dumps({**metrics, SYNTHETIC_SET_KEY: synthetic_set_md5(other)}))
    params = tmp_path / "params.yaml"
    params.write_text(PACKAGE_PARAMS)
    code, output = package_cli(inputs, tmp_path / "package", params)
    assert code == EXIT_INPUT
    assert f"judged another synthetic set ({SYNTHETIC_SET_KEY} {synthetic_set_md5(other)}), not " \
           f"{inputs.synthetic} ({synthetic_set_md5(inputs.synthetic)}); rerun QA on" in one_error(output)
    assert not (tmp_path / "package").exists()
    inputs.qa_metrics.write_text(json.dumps({k: v for k, v in metrics.items() if k != SYNTHETIC_SET_KEY}))
    code, output = package_cli(inputs, tmp_path / "package", params)
    assert code == EXIT_INPUT and "does not say which synthetic set it judged" in one_error(output)
    shutil.rmtree(inputs.synthetic)
    code, output = package_cli(inputs, tmp_path / "package", params)
    assert code == EXIT_INPUT and "synthetic image folder not found" in one_error(output)


@pytest.mark.parametrize(("record", "message"), [
    ("{not json", "record.json: not valid JSON (Expecting property name"),
    ("[1, 2]", "record.json: holds a JSON list, not an object"),
    (None, "record.json: n_classes missing; retrain the generator"),
    ({"n_classes": "three"}, "record.json: n_classes = 'three' is not a whole number of 1 or more"),
    ({"n_classes": 7}, "record.json: n_classes = 7 but 3 class names"),
])
def test_a_broken_training_record_is_one_error_line(tmp_path: Path, record: object, message: str) -> None:
    model = make_checkpoint(tmp_path / "gan")
    good = json.loads((model / "record.json").read_text())
    if record is None:
        text = json.dumps({k: v for k, v in good.items() if k != "n_classes"})
    else:
        text = record if isinstance(record, str) else json.dumps({**good, **record})
    (model / "record.json").write_text(text)
    params = tmp_path / "params.yaml"
    params.write_text("generate: {n_per_class: 2, device: cpu}\n")
    code, output = invoke("generate", "--params", str(params), "--checkpoint", str(model), "--out",
                          str(tmp_path / "out"))
    assert code == EXIT_INPUT and message in one_error(output)
    assert not (tmp_path / "out").exists()


# Runs a stage in a child process that kills itself (SIGKILL, as kill -9) in the middle of writing
# its output: the patched step is the one after the first files are written.
KILLED_MID_WRITE = """
import os, signal, sys
import {module} as target
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
target.{step} = die
from histosynth.cli import app
sys.argv = ["histosynth", *sys.argv[1:]]
app()
"""


def killed_mid_write(module: str, step: str, *args: str) -> None:
    code = KILLED_MID_WRITE.format(module=module, step=step)
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.tmp-*"))


@pytest.mark.slow
def test_a_stage_killed_mid_write_leaves_nothing_behind_after_its_next_run(tmp_path: Path) -> None:
    inputs = write_package_inputs(tmp_path / "inputs", per_split=1, n_synthetic=2)
    params = tmp_path / "params.yaml"
    params.write_text(PACKAGE_PARAMS)
    out = tmp_path / "data" / "package"
    args = ("package", "--params", str(params), "--real", str(inputs.real), "--synthetic", str(inputs.synthetic),
            "--gan", str(inputs.gan), "--qa-metrics", str(inputs.qa_metrics), "--out", str(out))
    killed_mid_write("histosynth.package.stage", "_write_sql_dumps", *args)
    left = temporaries(out)
    assert len(left) == 1 and any((out.parent / left[0]).rglob("*.png")) and not out.exists()
    with run_in_progress(out) as live:  # another run in progress: its folder must stay
        code, output = invoke(*args)
        assert code == EXIT_OK, output
        assert temporaries(out) == [live.name] and (out / "MD5SUMS").is_file()

    model = make_checkpoint(tmp_path / "gan")
    synthetic = tmp_path / "data" / "synthetic"
    gen_params = tmp_path / "generate.yaml"
    gen_params.write_text("generate: {n_per_class: 3, device: cpu}\n")
    gen_args = ("generate", "--params", str(gen_params), "--checkpoint", str(model), "--out", str(synthetic))
    killed_mid_write("histosynth.generate.run", "write_synthetic_set", *gen_args)
    assert len(temporaries(synthetic)) == 1
    code, output = invoke(*gen_args)
    assert code == EXIT_OK, output
    assert temporaries(synthetic) == [] and len(pd.read_parquet(synthetic / "manifest.parquet")) == 3 * 3
