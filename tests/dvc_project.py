"""A real git + DVC repository holding this project's pipeline, for the end-to-end tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from histosynth.output_policy import MARKER

REPO = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    out = dict(os.environ)
    # Stage commands call `python`: make it this interpreter.
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    for key, value in (("GIT_AUTHOR_NAME", "test"), ("GIT_AUTHOR_EMAIL", "test@example.invalid"),
                       ("GIT_COMMITTER_NAME", "test"), ("GIT_COMMITTER_EMAIL", "test@example.invalid")):
        out.setdefault(key, value)
    return out


def run(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check)


def histosynth(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "histosynth.cli", *args, check=check)


def deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def tree_md5s(root: Path) -> dict[str, str]:
    """MD5 of every file under ``root`` but histosynth's output marker, which is no data (DVC ignores
    it: a `dvc get` copy has none)."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


def make_repro(cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`make repro` as the README gives it, with this interpreter's environment standing in for .venv
    (``-o``: make neither creates nor reinstalls it)."""
    venv = Path(sys.executable).parent.parent
    return run(cwd, "make", "-o", str(venv / ".installed"), "repro", f"VENV={venv}", check=check)


def make_project(root: Path, params: dict) -> Path:
    """Copy the pipeline into ``root`` with params.yaml overridden by ``params``; git + DVC init, no repro."""
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "Makefile"):
        shutil.copy(REPO / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    merged = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), params)
    (root / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    run(root, "git", "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    shutil.copytree(REPO / ".dvc/plots", root / ".dvc/plots")  # the project's plot templates
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "project")
    return root
