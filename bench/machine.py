"""Describe the machine a benchmark ran on, so recorded figures can be compared honestly."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save_results(stem: str, table: str, results: dict | None = None) -> None:
    """Record a run: ``results/<stem>.md`` (the table) and, when given, ``results/<stem>.json``."""
    RESULTS_DIR.mkdir(exist_ok=True)
    if results is not None:
        (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS_DIR / f"{stem}.md").write_text(table)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _base_info() -> dict:
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
    }


def machine_info() -> dict:
    import torch

    return {
        **_base_info(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def host_info(python: Path | None = None) -> dict:
    """:func:`machine_info` for a script that runs without torch: torch's version, CPU capability and GPU
    are asked of ``python`` (an environment's interpreter), when given."""
    info = _base_info()
    if python is not None:
        probe = ("import json, torch; print(json.dumps({'torch': torch.__version__, "
                 "'cpu_capability': torch.backends.cpu.get_cpu_capability(), "
                 "'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))")
        try:
            done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=120)
            info.update(json.loads(done.stdout.strip().splitlines()[-1]))
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    return info


def code_revision() -> dict:
    """The commit measured, and the files under src/ that differed from it (several people edit
    the same checkout, so the working tree is what ran)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "uncommitted_src": git("status", "--porcelain", "--", "src").splitlines()}
