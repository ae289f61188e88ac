"""A real git + DVC repository holding this project's pipeline, for the end-to-end tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from histosynth.output_policy import MARKER

REPO = Path(__file__).resolve().parents[1]
# Small but real: the demo source, fewer images, a tiny GAN trained for two epochs. A GAN this
# small cannot pass the QA gates, so the pipeline only reports them. One torch thread and one
# benchmark training at a time: models this small run fastest so, and the tests run beside each
# other (pytest-xdist), where a second OpenMP thread waits for a core another test holds. The probe
# runs once, after the last epoch (a diffusion model samples its fakes step by step).
TINY_PARAMS = {
    "augment": {"per_class": 24},
    "gan": {"epochs": 2, "width": 4, "batch_size": 16, "checkpoint_every": 1, "threads": 1,
            "probe": {"every": 2, "max_images": 40}, "select": {"n_per_class": 10}},
    "generate": {"n_per_class": 12},
    "qa": {"enforce": False, "kl": {"n_per_class": 10}, "featurenet": {"epochs": 2, "width": 4, "folds": 2},
           "cas": {"enabled": True, "steps": 10}},
    "benchmark": {"seeds": [0], "steps": 20, "eval_every": 10, "width": 4, "bootstrap": {"resamples": 100},
                  "threads": 1},
}


def env() -> dict[str, str]:
    # As from a user's terminal, also under `make test`: a make started inside make would print
    # "Entering directory" lines after the summary that `make repro` must end with.
    out = {key: value for key, value in os.environ.items() if key not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
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


def make_project(root: Path, params: dict, source: Path = REPO) -> Path:
    """Copy the pipeline of ``source`` (this checkout, or another revision's files) into ``root`` with
    params.yaml overridden by ``params``; git + DVC init, no repro."""
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "Makefile", "constraints.txt"):
        if (source / name).is_file() or name != "constraints.txt":  # revisions before the pins had none
            shutil.copy(source / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(source / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    merged = deep_update(yaml.safe_load((source / "params.yaml").read_text()), params)
    (root / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    run(root, "git", "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    shutil.copytree(source / ".dvc/plots", root / ".dvc/plots")  # the project's plot templates
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "project")
    return root


IN_PROCESS = """
import sys
from pathlib import Path

from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging
from histosynth.pipeline import run_pipeline

if __name__ == "__main__":
    setup_logging()
    root = Path(sys.argv[1])
    run_guarded(lambda: run_pipeline(load_params(root / "params.yaml"), root))
"""


# Figures that measure the run, not its result: how long training took (and the report shows it).
TIMINGS = {"reports/train/metrics.json": ("wall_time_s", "images_per_s")}
SHOWS_TIMINGS = "reports/index.html"


def pipeline_outputs(root: Path) -> dict[str, str]:
    """MD5 of every file the pipeline wrote under ``root`` (data/, models/, reports/), the training's
    timings left out (TIMINGS; the report that shows them is left out whole)."""
    found = {f"{folder}/{name}": md5 for folder in ("data", "models", "reports")
             for name, md5 in tree_md5s(root / folder).items() if f"{folder}/{name}" != SHOWS_TIMINGS}
    for name, keys in TIMINGS.items():
        if name in found:
            figures = {key: value for key, value in json.loads((root / name).read_text()).items() if key not in keys}
            found[name] = hashlib.md5(json.dumps(figures, sort_keys=True).encode()).hexdigest()
    return found


def rerun_in_process(project: Path, work: Path) -> Path:
    """A git clone of ``project`` (the same commit: a package card names it) without the pipeline's
    outputs, run from scratch by histosynth.pipeline.run_pipeline in one process of this checkout's
    code, from another folder."""
    from histosynth.pipeline import STAGES

    clone = work / "clone"
    run(work, "git", "clone", "-q", str(project), str(clone))
    for definition in STAGES:  # outputs git keeps (cache: false) are made again
        for slot in definition.output_slots():
            target = clone / slot.path
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    script = work / "in_process.py"
    script.write_text(IN_PROCESS, encoding="utf-8")
    run(work, sys.executable, str(script), "clone")
    return clone
