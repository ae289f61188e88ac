"""Issue 20, ordinary failures: a full disk, a read-only or unwritable folder, a name too long, a
closed pipe, a deleted current folder, four runs at once, SIGTERM and Ctrl-C (also under `dvc
repro`). Each ends with one `error:` line (or a quiet stop for a closed pipe) and its documented
status, and leaves no temporary behind; all run histosynth as a separate process on real files.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_run import invoke
from dvc_project import make_project
from hostile_outputs_helpers import (
    cli, env, folder_source, histosynth_cmd, ingest_params, one_error, project_params, run_in_progress, temporaries,
    tree, wait_for,
)
from histosynth.entry import EXIT_BROKEN_PIPE, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED
from histosynth.fsutil import atomic_output_dir
from histosynth.package.stage import build_package
from histosynth.parallel import ordered_map
from package_inputs import package_params, write_package_inputs


def _userns_mounts() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_mounts = pytest.mark.skipif(not _userns_mounts(), reason="needs `unshare -rm` (user and mount namespaces) "
                                                              "to mount a small tmpfs or a read-only folder")


def in_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` (sh) in a private mount namespace, where it may mount a tmpfs or remount read-only."""
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=300)


def _quoted(args: list[str]) -> str:
    return " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)


@pytest.fixture(scope="module")
def package_inputs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("inputs")
    inputs = write_package_inputs(root, per_split=1, n_synthetic=1)
    project_params(root)
    return inputs


def package_args(inputs, out: Path | str) -> list[str]:
    return ["package", "--params", str(inputs.real.parent / "params.yaml"), "--real", str(inputs.real),
            "--synthetic", str(inputs.synthetic), "--gan", str(inputs.gan), "--qa-metrics", str(inputs.qa_metrics),
            "--out", str(out)]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, package_inputs) -> Path:
    out = tmp_path_factory.mktemp("package") / "package"
    build_package(package_params(), package_inputs.real, package_inputs.synthetic, package_inputs.gan,
                  package_inputs.qa_metrics, out, revision="test")
    return out


# -- a full disk ----------------------------------------------------------------------------------

@needs_mounts
@pytest.mark.parametrize("command, size", [("ingest", "64k"), ("package", "64k"), ("export-sql", "4k")])
def test_a_full_disk_is_one_error_line_and_leaves_no_temporary(tmp_path: Path, command: str, size: str,
                                                               package_inputs, package: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if command == "ingest":
        source = folder_source(tmp_path / "cells", n_per_class=40)
        args = ["ingest", "--params", str(ingest_params(tmp_path, source)), "--out", str(disk / "real")]
    elif command == "package":
        args = package_args(package_inputs, disk / "package")
    else:
        args = ["export-sql", str(package), "--dialect", "mysql", "--out", str(disk / "db.sql")]
    # room for the first files, not for all of them
    script = (f"mount -t tmpfs -o size={size} tmpfs {_quoted([str(disk)])} && {_quoted(histosynth_cmd(*args))}; "
              f"echo \"status $?\"; ls -A {_quoted([str(disk)])}")
    proc = in_namespace(script, tmp_path)
    lines = proc.stdout.splitlines()
    status = next(line for line in lines if line.startswith("status "))
    left = lines[lines.index(status) + 1:]
    assert status == f"status {EXIT_INPUT}", proc.stderr
    assert "No space left on device" in one_error(proc.stderr)
    assert left == [], left  # neither the output nor a temporary


@pytest.mark.parametrize("command, limit", [("ingest", 1500), ("package", 6000), ("export-sql", 4096)])
def test_a_file_size_limit_is_one_error_line_and_leaves_no_temporary(tmp_path: Path, command: str, limit: int,
                                                                     package_inputs, package: Path) -> None:
    # RLIMIT_FSIZE (ulimit -f) works everywhere: a write past it fails with EFBIG, as a full disk fails with ENOSPC.
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if command == "ingest":
        source = folder_source(tmp_path / "cells")
        args = ["ingest", "--params", str(ingest_params(tmp_path, source)), "--out", str(out_dir / "real")]
    elif command == "package":
        args = package_args(package_inputs, out_dir / "package")
    else:
        args = ["export-sql", str(package), "--dialect", "mysql", "--out", str(out_dir / "db.sql")]

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(histosynth_cmd(*args), cwd=tmp_path, env=env(PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=180, preexec_fn=limit_file_size)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "File too large" in one_error(proc.stderr)
    assert list(out_dir.iterdir()) == []


# -- folders that cannot be written ---------------------------------------------------------------

@needs_mounts
def test_a_read_only_data_folder_is_one_error_line(tmp_path: Path) -> None:
    source = folder_source(tmp_path / "cells")
    ingest_params(tmp_path, source)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    before = tree(tmp_path)
    script = f"mount --bind data data && mount -o remount,bind,ro data && {_quoted(histosynth_cmd('ingest'))}"
    proc = in_namespace(script, tmp_path)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "Read-only file system" in one_error(proc.stderr)
    assert tree(tmp_path) == before


def _without_root_powers() -> list[str] | None:
    """A command prefix under which permissions apply (root without CAP_DAC_OVERRIDE), or None."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else None


def test_an_unwritable_output_folder_is_one_error_line(tmp_path: Path) -> None:
    prefix = _without_root_powers()
    if prefix is None:
        pytest.skip("root here, and setpriv cannot drop the power to write anywhere")
    source = folder_source(tmp_path / "cells")
    ingest_params(tmp_path, source)
    (tmp_path / "locked").mkdir(mode=0o555)
    try:
        proc = subprocess.run([*prefix, *histosynth_cmd("ingest", "--out", "locked/real")], cwd=tmp_path, env=env(),
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == EXIT_INPUT and "Permission denied" in one_error(proc.stderr)
        assert list((tmp_path / "locked").iterdir()) == []
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_an_output_name_too_long_is_one_error_line(tmp_path: Path) -> None:
    source = folder_source(tmp_path / "cells")
    ingest_params(tmp_path, source)
    for out in ("x" * 300, "/".join(["y" * 200] * 25)):
        code, output = invoke("ingest", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / out))
        assert code == EXIT_INPUT and "too long" in one_error(output)


# -- a closed pipe, a deleted current folder ------------------------------------------------------

@pytest.mark.parametrize("command", [["export-sql", "PACKAGE", "--dialect", "sqlite"], ["verify", "PACKAGE"]])
def test_a_closed_pipe_stops_quietly_as_coreutils_do(package: Path, tmp_path: Path, command: list[str]) -> None:
    # `histosynth export-sql ... | head -c 0`: the reader is gone before the first byte is written
    args = [str(package) if a == "PACKAGE" else a for a in command]
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run(histosynth_cmd(*args), cwd=tmp_path, env=env(), stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write)
    assert proc.returncode == EXIT_BROKEN_PIPE, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr and "error" not in proc.stderr


def test_a_deleted_current_folder_is_one_error_line(tmp_path: Path) -> None:
    script = f"mkdir gone && cd gone && rmdir ../gone && exec {_quoted(histosynth_cmd('ingest', '--out', 'real'))}"
    proc = subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "the current folder no longer exists" in one_error(proc.stderr)


# -- runs at once ---------------------------------------------------------------------------------

@pytest.mark.slow  # four processes
def test_four_package_runs_into_one_folder_end_with_a_complete_package(tmp_path: Path, package_inputs) -> None:
    out = tmp_path / "package"
    runs = [subprocess.Popen(histosynth_cmd(*package_args(package_inputs, out)), cwd=tmp_path, env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for code, stderr in results:
        assert "Traceback" not in stderr, stderr
        assert code == EXIT_OK or (code == EXIT_INPUT and one_error(stderr)), stderr
    assert any(code == EXIT_OK for code, _ in results)
    verified = cli(tmp_path, "verify", str(out))
    assert verified.returncode == EXIT_OK, verified.stdout + verified.stderr
    assert temporaries(tmp_path) == []


# -- SIGTERM and Ctrl-C -----------------------------------------------------------------------------

# Runs histosynth with every PNG write slowed down, so that a signal surely arrives while the
# thread pool is writing into the temporary folder.
SLOW_WRITES = """
import sys, time
import histosynth.images as images
write = images._encode_and_write
def slow(item):
    time.sleep(0.05)
    return write(item)
images._encode_and_write = slow
if sys.argv[1].endswith(".py"):
    import runpy
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    from histosynth.cli import app
    sys.argv = ["histosynth", *sys.argv[1:]]
    app()
"""


def default_sigint() -> None:
    """As in a terminal: a test run started in the background (``&``) inherits SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum, status, says", [(signal.SIGTERM, EXIT_TERMINATED, "terminated"),
                                                  (signal.SIGINT, EXIT_INTERRUPTED, "interrupted")])
def test_a_signal_mid_write_removes_the_temporary_and_keeps_the_last_output(tmp_path: Path, signum: int, status: int,
                                                                           says: str) -> None:
    source = folder_source(tmp_path / "cells", n_per_class=60)
    ingest_params(tmp_path, source)
    assert cli(tmp_path, "ingest", "--out", "real").returncode == EXIT_OK
    before = tree(tmp_path / "real")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITES, "ingest", "--out", "real"], cwd=tmp_path, env=env(),
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        wait_for(lambda: any(len(list(t.rglob("*.png"))) >= 4 for t in tmp_path.glob(".real.tmp-*")), 120,
                 "the first images")
        proc.send_signal(signum)
        stderr = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == status, stderr
    assert says in stderr and "Traceback" not in stderr
    assert temporaries(tmp_path) == []
    assert tree(tmp_path / "real") == before


def test_a_pool_still_writing_is_stopped_before_its_temporary_folder_goes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    calls_after: list[Path] = []
    gone = threading.Event()

    def write(i: int) -> int:
        time.sleep(0.02)
        target = tmp_path / f".out.probe-{i}"  # beside, so that a write after the removal shows
        if gone.is_set():
            calls_after.append(target)
        return i

    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(out) as tmp:
            results = ordered_map(write, range(10_000), workers=2, chunk=1)
            next(results)  # the pool runs; the map is left open, as a caller leaves it on Ctrl-C
            raise KeyboardInterrupt
    gone.set()
    time.sleep(0.3)
    assert calls_after == [] and not tmp.exists() and temporaries(tmp_path) == []
    del results


# -- under dvc repro --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_dvc_repro_leaves_no_temporary_folder(tmp_path: Path, signum: int) -> None:
    project = make_project(tmp_path, {"data": {"source": "builtin:ihc", "image_size": 64}})
    (project / "slow_writes.py").write_text(SLOW_WRITES)
    dvc_yaml = project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("cmd: python stages/ingest.py",
                                                     "cmd: python slow_writes.py stages/ingest.py", 1))
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "ingest"], cwd=project, env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             preexec_fn=default_sigint)
    try:
        wait_for(lambda: any(len(list(t.rglob("*.png"))) >= 4 for t in (project / "data").glob(".real.tmp-*")), 240,
                 "the first images")
        os.killpg(repro.pid, signum)  # what Ctrl-C in a terminal does: the whole process group
        output = repro.communicate(timeout=120)[0]
    finally:
        with_group_gone(repro.pid)
    assert repro.returncode != 0, output
    assert temporaries(project / "data") == [] and not (project / "data" / "real").exists(), output
    assert "Traceback" not in output


def with_group_gone(pgid: int, timeout: float = 60) -> None:
    """Wait until no process of the group is left (none hangs); kill what remains after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError("a process of the dvc repro group was still running")


def test_the_next_command_removes_what_a_killed_stage_left(tmp_path: Path) -> None:
    # A stage killed outright whose rerun DVC skips (run cache): any later histosynth command in the
    # project removes the dead run's folder; a live run's stays.
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    data = tmp_path / "data"
    data.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [data / f".real.tmp-{dead.pid}-777", data / f".package.tmp-{dead.pid}", tmp_path / "reports" /
             f".benchmark.old-{dead.pid}-1"]
    for folder in stale:
        folder.mkdir(parents=True)
        (folder / "part.png").write_bytes(b"partial")
    with run_in_progress(data / "synthetic") as live:
        proc = cli(tmp_path, "verify", "data/package")
        assert proc.returncode == EXIT_INPUT  # no package there: beside the point
        assert live.is_dir()
    assert not [folder for folder in stale if folder.exists()]
    shutil.rmtree(live, ignore_errors=True)
