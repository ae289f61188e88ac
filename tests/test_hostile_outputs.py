"""Issue 20, outputs: no output path a user types can destroy data (histosynth.output_policy).

Each case runs histosynth as a separate process (or the CLI in-process where many variants share
one case) on real folders in a temporary directory and compares the whole tree before and after:
a refusal is one `error:` line, exit status 4, and not one byte changed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli_run import invoke
from conftest import write_image_folder
from dvc_project import dvc
from hostile_outputs_helpers import (
    cli, folder_source, ingest_params, one_error, project_params, run_in_progress, temporaries, tree,
)
from histosynth.config.data import DataParams
from histosynth.data.ingest import ingest
from histosynth.entry import EXIT_INPUT, EXIT_OK
from histosynth.fsutil import atomic_output_dir
from histosynth.generators.training.checkpoint import write_record
from histosynth.output_policy import MARKER, OutputRefused, check_outputs, check_replaceable_folder
from histosynth.package.collect import LOCAL_PATH
from histosynth.package.stage import build_package
from package_inputs import package_params, qa_metrics, write_package_inputs, write_synthetic_folder
from test_ingest_medmnist import write_medmnist_npz


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A user's folder with a params.yaml for a folder source beside it, and a file of their own."""
    source = folder_source(tmp_path / "cells")
    work = tmp_path / "work"
    work.mkdir()
    ingest_params(work, source)
    (work / "notes.txt").write_text("my notes\n")
    return work


# -- the Done-when cases, as separate processes -------------------------------------------------

def test_ingest_out_dot_leaves_the_current_folder_as_it_was(work: Path) -> None:
    before = tree(work.parent)
    proc = cli(work, "ingest", "--out", ".")
    assert proc.returncode == EXIT_INPUT
    assert "is the current folder" in one_error(proc.stderr)
    assert tree(work.parent) == before


def test_ingest_out_the_source_folder_leaves_every_source_image(work: Path) -> None:
    source = work.parent / "cells"
    before = tree(work.parent)
    proc = cli(work, "ingest", "--out", str(source))
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "is " + str(source) in one_error(proc.stderr) and "(data.source folder)" in proc.stderr
    for out in (source / "cells a", source / "cells a" / "new"):  # inside it: the next ingest would read them
        code, output = invoke_in(work, "ingest", "--out", str(out))
        assert code == EXIT_INPUT and "lies inside" in one_error(output)
    assert tree(work.parent) == before


def test_package_out_data_real_leaves_the_real_images(tmp_path: Path) -> None:
    inputs = write_package_inputs(tmp_path / "data", per_split=1, n_synthetic=1)
    project_params(tmp_path)
    args = ["package", "--real", "data/real", "--synthetic", "data/synthetic", "--gan", "data/gan",
            "--qa-metrics", "data/qa/metrics.json"]
    before = tree(tmp_path)
    proc = cli(tmp_path, *args, "--out", "data/real")
    assert proc.returncode == EXIT_INPUT and "is data/real" in one_error(proc.stderr)
    for out, says in (("data", "holds data/real"), ("data/real/package", "lies inside"),
                      ("data/qa", "holds data/qa/metrics.json")):
        code, output = invoke_in(tmp_path, *args, "--out", out)
        assert code == EXIT_INPUT and says in one_error(output)
    assert tree(tmp_path) == before
    assert inputs.real.is_dir()


# -- where an output may not go -----------------------------------------------------------------

@pytest.mark.parametrize("out, says", [
    ("..", "holds the current folder"),
    ("../..", "holds the current folder"),
    ("HOME", "is your home folder"),
    ("HOME/..", "holds your home folder"),
])
def test_the_current_and_home_folders_and_their_parents_are_refused(work: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   out: str, says: str) -> None:
    home = work.parent / "homes" / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "settings").write_text("mine")
    inner = work / "sub"
    inner.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(inner)
    before = tree(work.parent)
    code, output = invoke("ingest", "--params", str(work / "params.yaml"), "--out", out.replace("HOME", str(home)))
    assert code == EXIT_INPUT and says in one_error(output)
    assert tree(work.parent) == before


@pytest.mark.parametrize("command", [
    ["augment", "--out", "."], ["augment", "--preview", "."], ["train", "--out", "."], ["train", "--report", "."],
    ["generate", "--out", "."], ["featurenet", "--out", "."], ["featurenet", "--report", "."], ["curate", "--out", "."],
    ["curate", "--report", "."], ["qa", "--out", "."], ["package", "--out", "."], ["benchmark", "--out", "."],
])
def test_every_command_refuses_the_current_folder_as_an_output(tmp_path: Path, command: list[str]) -> None:
    project_params(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes\n")
    before = tree(tmp_path)
    code, output = invoke_in(tmp_path, *command)
    assert code == EXIT_INPUT and "is the current folder" in one_error(output)
    assert tree(tmp_path) == before


def test_the_root_folder_is_refused_before_anything_happens() -> None:
    # Only the check: a regression must not get to write anything there.
    with pytest.raises(OutputRefused, match="root folder"):
        check_replaceable_folder("/")


def test_an_output_given_as_a_symbolic_link_is_refused(work: Path) -> None:
    (work / "empty").mkdir()
    (work / "ours").mkdir()
    (work / "ours" / MARKER).write_text("")
    (work / "ours" / "old.png").write_bytes(b"ours")
    for target in ("empty", "ours", "nowhere"):
        (work / f"to-{target}").symlink_to(target)
    before = tree(work.parent)
    for target in ("empty", "ours", "nowhere"):
        code, output = invoke_in(work, "ingest", "--out", f"to-{target}")
        assert code == EXIT_INPUT and "a symbolic link" in one_error(output)
    assert tree(work.parent) == before


def _special_files(folder: Path) -> dict[str, Path]:
    made = {"FIFO": folder / "fifo", "socket": folder / "socket"}
    os.mkfifo(made["FIFO"])
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(made["socket"]))
    server.close()
    try:
        os.mknod(folder / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made["character device"] = folder / "null"
    except PermissionError:
        pass  # not root: the FIFO and the socket stand for every special file
    return made


def test_a_device_fifo_socket_or_file_is_refused_as_an_output_folder(work: Path) -> None:
    special = _special_files(work)
    (work / "a file").write_text("mine")
    before = tree(work.parent)
    for kind, path in [*special.items(), ("file", work / "a file")]:
        code, output = invoke("ingest", "--params", str(work / "params.yaml"), "--out", str(path))
        assert code == EXIT_INPUT and f"a {kind}, not a folder" in one_error(output)
    assert tree(work.parent) == before


def test_an_existing_folder_of_someone_elses_files_is_refused(work: Path) -> None:
    (work / "results" / "2024").mkdir(parents=True)
    (work / "results" / "2024" / "figure.png").write_bytes(b"not ours")
    before = tree(work.parent)
    code, output = invoke_in(work, "ingest", "--out", "results")
    assert code == EXIT_INPUT and "histosynth did not make" in one_error(output)
    assert tree(work.parent) == before


def test_folders_that_are_ours_are_replaced(work: Path) -> None:
    (work / "empty").mkdir()
    (work / "marked").mkdir()
    (work / "marked" / MARKER).write_text("")
    (work / "marked" / "stale.png").write_bytes(b"from an earlier run")
    write_image_folder(work / "earlier", {"train": 1})  # an earlier version's output: our manifest, no marker
    (work / "earlier" / "stale.png").write_bytes(b"from an earlier run")
    (work / "dvc.yaml").write_text("stages:\n  ingest:\n    cmd: python stages/ingest.py\n    outs:\n"
                                   "      - declared\n      - reports/ingest/duplicates.tsv:\n          cache: false\n")
    (work / "declared").mkdir()  # as `dvc checkout` restores a stage output: without the marker
    (work / "declared" / "stale.png").write_bytes(b"from dvc checkout")
    for out in ("empty", "marked", "earlier", "declared"):
        code, output = invoke_in(work, "ingest", "--out", out)
        assert code == EXIT_OK, output
        assert (work / out / MARKER).is_file() and (work / out / "manifest.parquet").is_file()
        assert not (work / out / "stale.png").exists()
    assert temporaries(work) == []


def test_the_project_pipeline_folders_restored_without_a_marker_are_ours(work: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # reports/ingest holds only files dvc.yaml declares: ingest's report folder may replace it.
    (work / "dvc.yaml").write_text(Path(__file__).resolve().parents[1].joinpath("dvc.yaml").read_text())
    monkeypatch.chdir(work)  # dvc.yaml is the current folder's: the project root's
    report = work / "reports" / "ingest"
    report.mkdir(parents=True)
    for name in ("duplicates.json", "duplicates.tsv", "duplicates.png"):
        (report / name).write_text("as git restores it\n")
    check_outputs({"report folder": report})
    (report / "mine.txt").write_text("not declared")
    with pytest.raises(OutputRefused, match="did not make"):
        check_outputs({"report folder": report})


def invoke_in(folder: Path, *args: str) -> tuple[int, str]:
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        return invoke(*args)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("command", [
    ["augment", "--real", "data/real", "--out", "data/real"],
    ["augment", "--real", "data/real", "--out", "data/augmented", "--preview", "data/augmented/previews"],
    ["featurenet", "--real", "data/real", "--out", "data/real/net"],
    ["generate", "--checkpoint", "models/gan", "--out", "models/gan"],
    ["train", "--data", "data/real", "--real", "data/real", "--out", "models/gan", "--report", "data"],
    ["qa", "--real", "data/real", "--synthetic", "data/synthetic", "--out", "data/synthetic"],
    ["benchmark", "--package", "data/package", "--augmented", "data/augmented", "--out", "data/package/bench"],
    ["report", "--out", "reports/qa/index.html"],
])
def test_an_output_on_an_input_of_the_same_command_is_refused(tmp_path: Path, command: list[str]) -> None:
    project_params(tmp_path)
    write_image_folder(tmp_path / "data" / "real", {"train": 2, "val": 1, "test": 1})
    for folder in ("data/synthetic", "data/augmented", "data/package", "models/gan", "reports/qa"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    before = tree(tmp_path)
    code, output = invoke_in(tmp_path, *command)
    assert code == EXIT_INPUT, output
    line = one_error(output)
    assert "which this command reads" in line or "overlap" in line
    assert tree(tmp_path) == before


def test_the_swap_never_removes_a_folder_that_appeared_meanwhile(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(OutputRefused, match="did not make"):
        with atomic_output_dir(out) as tmp:
            (tmp / "new.png").write_bytes(b"ours")
            out.mkdir()
            (out / "theirs.txt").write_text("written by someone else while we ran")
    assert (out / "theirs.txt").read_text() == "written by someone else while we ran"
    assert temporaries(tmp_path) == []


def test_a_live_histosynth_runs_temporary_is_kept_and_dead_or_foreign_ones_go(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    dead = subprocess.Popen(["true"])
    dead.wait()
    sleeper = subprocess.Popen(["sleep", "60"])  # alive, but not histosynth: its id was reused
    try:
        with run_in_progress(out) as live:
            names = [f".synthetic.tmp-{dead.pid}", f".synthetic.tmp-{dead.pid}-12345",
                     f".synthetic.tmp-{sleeper.pid}", f".synthetic.tmp-{live.name.split('-')[1]}-1",
                     f".synthetic.old-{dead.pid}-1", f".other.tmp-{dead.pid}", ".synthetic.tmp-notapid",
                     f".synthetic.tmp-{dead.pid}.bak"]
            for name in names:
                (tmp_path / name).mkdir()
                (tmp_path / name / "x.png").write_bytes(b"partial")
            with atomic_output_dir(out) as tmp:
                (tmp / "done").write_text("ok")
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
                [live.name, f".other.tmp-{dead.pid}", ".synthetic.tmp-notapid", f".synthetic.tmp-{dead.pid}.bak",
                 "synthetic"])
    finally:
        sleeper.kill()
        sleeper.wait()


# -- export-sql and report: file outputs ---------------------------------------------------------

@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("package")
    inputs = write_package_inputs(root / "inputs", per_split=1, n_synthetic=1)
    build_package(package_params(), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics, root / "package",
                  revision="test")
    return root / "package"


def test_export_sql_refuses_a_device_a_link_a_folder_a_foreign_file_and_the_package(package: Path,
                                                                                    tmp_path: Path) -> None:
    special = _special_files(tmp_path)
    (tmp_path / "thesis.sql").write_text("-- my own schema\nCREATE TABLE t (x int);\n")
    (tmp_path / "link.sql").symlink_to(tmp_path / "thesis.sql")
    (tmp_path / "folder").mkdir()
    cases = [*((path, f"a {kind}, not a file") for kind, path in special.items()),
             (tmp_path / "thesis.sql", "not an SQL dump written by histosynth"),
             (tmp_path / "link.sql", "a symbolic link"),
             (tmp_path / "folder", "a folder, not a file"),
             (package / "sql" / "sqlite.sql", "which this command reads")]
    before, package_before = tree(tmp_path), tree(package)
    for out, says in cases:
        code, output = invoke("export-sql", str(package), "--dialect", "sqlite", "--out", str(out))
        assert code == EXIT_INPUT and says in one_error(output), (out, output)
    assert tree(tmp_path) == before and tree(package) == package_before


def test_export_sql_replaces_its_own_dump(package: Path, tmp_path: Path) -> None:
    out = tmp_path / "db.sql"
    for _ in range(2):
        code, output = invoke("export-sql", str(package), "--dialect", "postgresql", "--out", str(out))
        assert code == EXIT_OK, output
    assert out.read_bytes() == (package / "sql" / "postgresql.sql").read_bytes()


def test_report_refuses_to_overwrite_a_page_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html><body>my lab's home page</body></html>")
    before = tree(tmp_path)
    code, output = invoke("report", "--root", str(tmp_path), "--out", str(tmp_path / "index.html"))
    assert code == EXIT_INPUT and "not an HTML report written by histosynth" in one_error(output)
    assert tree(tmp_path) == before
    code, output = invoke("report", "--root", str(tmp_path), "--out", str(tmp_path / "report.html"))
    assert code == EXIT_OK, output
    code, output = invoke("report", "--root", str(tmp_path), "--out", str(tmp_path / "report.html"))
    assert code == EXIT_OK, output  # its own page: replaced


# -- privacy: the origin column -----------------------------------------------------------------

def test_a_folder_sources_absolute_path_reaches_no_package_file(work: Path) -> None:
    source = work.parent / "cells"
    project_params(work, data={"source": f"folder:{source}", "image_size": 28, "val_fraction": 0.25,
                               "test_fraction": 0.25})
    code, output = invoke_in(work, "ingest", "--out", "real")
    assert code == EXIT_OK, output
    manifest = pd.read_parquet(work / "real" / "manifest.parquet")
    assert set(manifest["origin"]) <= {f"{c}/img {i:02d}.png" for c in ("cells a", "cells b") for i in range(6)}
    classes = ("cells a", "cells b")
    write_synthetic_folder(work / "synthetic", classes, 2, 28, seed=1)
    write_record(work / "gan", {"arch": "dcgan", "class_names": list(classes), "n_classes": 2, "epoch": 1,
                                "image_size": 28, "latent_dim": 8, "width": 4,
                                "params": {"batch_size": 4, "g_lr": 2e-4, "d_lr": 2e-4, "loss": "bce", "epochs": 1}})
    (work / "qa.json").write_text(json.dumps(qa_metrics(classes, True, work / "synthetic")))
    code, output = invoke_in(work, "package", "--real", "real", "--synthetic", "synthetic", "--gan", "gan",
                             "--qa-metrics", "qa.json", "--out", "package")
    assert code == EXIT_OK, output
    files = [p for p in (work / "package").rglob("*") if p.is_file()]
    assert not [p for p in files if str(source).encode() in p.read_bytes()]
    assert not [p for p in files if str(work.parent).encode() in p.read_bytes()]
    card = (work / "package" / "README.md").read_text()
    assert "its path inside the source folder" in card
    metadata = pd.read_parquet(work / "package" / "metadata.parquet")
    assert metadata.loc[metadata["source"] == "real", "origin"].str.startswith("cells ").all()


def test_an_older_ingests_absolute_origins_are_published_as_hashes(tmp_path: Path) -> None:
    inputs = write_package_inputs(tmp_path / "inputs", per_split=1, n_synthetic=1)
    manifest = pd.read_parquet(inputs.real / "manifest.parquet")
    manifest["origin"] = "/home/dr_jones/patient_0042/" + manifest["id"] + ".tif"
    manifest.to_parquet(inputs.real / "manifest.parquet", index=False)
    metadata = build_package(package_params(), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics,
                             tmp_path / "package", revision="test")
    real = metadata[metadata["source"] == "real"]
    assert real["origin"].str.fullmatch(r"sha256:[0-9a-f]{16}").all() and real["origin"].is_unique
    assert not [p for p in (tmp_path / "package").rglob("*") if p.is_file() and b"dr_jones" in p.read_bytes()]


def test_the_marker_leaves_dvcs_hash_of_an_output_as_it_was(tmp_path: Path) -> None:
    # .dvcignore keeps the marker out of DVC's hashes: the demo's dvc.lock stays valid.
    shutil.copy(Path(__file__).resolve().parents[1] / ".dvcignore", tmp_path / ".dvcignore")
    dvc(tmp_path, "init", "--no-scm", "-q")
    out = tmp_path / "real"
    write_image_folder(out, {"train": 2})

    def dvc_hash() -> str:
        dvc(tmp_path, "add", "-q", "real")
        return yaml.safe_load((tmp_path / "real.dvc").read_text())["outs"][0]["md5"]

    plain = dvc_hash()
    (out / MARKER).write_text("marked")
    assert dvc_hash() == plain


@pytest.mark.parametrize("source", ["builtin", "medmnist", "folder"])
def test_no_source_records_a_local_path_as_origin(tmp_path: Path, source: str) -> None:
    raw = tmp_path / "private" / "raw"
    if source == "builtin":
        data = DataParams(source="builtin:ihc", root=str(raw), max_per_class=5, max_eval_per_class=2)
    elif source == "medmnist":
        write_medmnist_npz(raw / "bloodmnist.npz", n_classes=8, size=28)
        data = DataParams(source="medmnist:bloodmnist", root=str(raw), image_size=28)
    else:
        data = DataParams(source=f"folder:{folder_source(tmp_path / 'private' / 'cells')}", image_size=28,
                          val_fraction=0.25, test_fraction=0.25)
    manifest = ingest(data, tmp_path / "real")
    assert not manifest["origin"].str.contains(str(tmp_path / "private"), regex=False).any()
    assert not manifest["origin"].str.match(LOCAL_PATH).any()
