"""Shared by the hostile-output tests: running histosynth as a user would (a real process), the
state of a folder tree before and after, a small folder source, a live histosynth run."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from dvc_project import deep_update
from test_ingest_folder import save_images

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), out.get("PYTHONPATH", "")]))
    out.pop("HISTOSYNTH_DEBUG", None)
    out.update(extra)
    return out


def histosynth_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "histosynth.cli", *args]


def cli(cwd: Path, *args: str, timeout: float = 180, **extra_env: str) -> subprocess.CompletedProcess:
    """``histosynth *args`` in ``cwd``, as a separate process."""
    return subprocess.run(histosynth_cmd(*args), cwd=cwd, env=env(**extra_env), capture_output=True, text=True,
                          timeout=timeout)


def one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (and ``root`` itself) with what it is: a file's MD5, a link's
    target, a folder, a FIFO..., as lstat sees them (links are not followed)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in ["", *dirs, *files]:
            path = Path(folder) / name
            mode = os.lstat(path).st_mode
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(mode):
                out[rel] = "link to " + os.readlink(path)
            elif stat.S_ISREG(mode):
                out[rel] = hashlib.md5(path.read_bytes()).hexdigest()
            else:
                out[rel] = stat.S_IFMT(mode)
    return out


def temporaries(folder: Path) -> list[str]:
    """What runs left behind in ``folder``: names with .tmp- or .old- (atomic outputs and writes)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def folder_source(root: Path, n_per_class: int = 6, size: tuple[int, int] = (32, 32)) -> Path:
    """A ``folder:`` source: class folders ``cells a`` and ``cells b`` of random-texture PNGs."""
    for seed, name in enumerate(("cells a", "cells b")):
        save_images(root / name, n_per_class, "RGB", ".png", seed=seed, size=size)
    return root


def ingest_params(folder: Path, source: Path, **data: object) -> Path:
    extra = "".join(f", {key}: {value}" for key, value in data.items())
    path = folder / "params.yaml"
    path.write_text(f"data: {{source: 'folder:{source}', image_size: 28, val_fraction: 0.25, test_fraction: 0.25"
                    f"{extra}}}\n")
    return path


def project_params(folder: Path, **sections: dict) -> Path:
    """The project's params.yaml in ``folder``, with ``sections`` merged in."""
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), sections)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# A histosynth process in the middle of writing ``sys.argv[1]``: it prints its temporary folder and waits.
HOLDER = """
import sys, time
from histosynth.fsutil import atomic_output_dir
with atomic_output_dir(sys.argv[1]) as tmp:
    print(tmp, flush=True)
    time.sleep(120)
"""


@contextmanager
def run_in_progress(out: Path) -> Iterator[Path]:
    """A live histosynth run writing ``out``; yields its temporary folder (killed -9 at the end)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=env(), stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line, "the holder did not start"
        yield Path(line)
    finally:
        proc.kill()
        proc.wait()


def wait_for(condition, timeout: float = 60, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
