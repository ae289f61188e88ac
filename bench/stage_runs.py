"""What the memory and scale benchmarks share: folder sources of textured tiles, projects made from
params.yaml, and stages run in processes of their own (as DVC runs them) with their peak memory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from stage_peak import PEAK_FILE

REPO = Path(__file__).resolve().parents[1]


def textured_png(rng: np.random.Generator, label: int, size: int) -> bytes:
    """A tile of stripes whose angle and colour depend on ``label``, with pixel noise, as PNG."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.full((size, size, 3), 200.0, np.float32) + rng.normal(0, 12, (size, size, 3))
    period = rng.uniform(4, 12)
    img[np.sin((xx * (label + 1) + yy * label + rng.uniform(0, 8)) * 2 * np.pi / period) > 0] -= (60 * label, 80, 40)
    out = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def write_folder_source(folder: Path, classes: tuple[str, ...], per_class: int, size: int, seed: int) -> Path:
    """``folder/<class>/tile_NNNNN.png``, one tile at a time; a folder already complete is kept."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (folder / name / f"tile_{i:05d}.png").write_bytes(textured_png(rng, label, size))
    done.write_text("")
    return folder


def write_params(project: Path, extra: dict, base: Path = REPO / "params.yaml") -> Path:
    """``project/params.yaml``: ``base`` (the repository's params.yaml) updated by ``extra`` (nested)."""
    params = yaml.safe_load(base.read_text())
    update(params, extra)
    project.mkdir(parents=True, exist_ok=True)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def update(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            update(base[key], value)
        else:
            base[key] = value


def run_stage(code: Path, project: Path, name: str) -> dict:
    """Run ``stages/<name>.py`` of ``code`` in ``project``: its seconds, its CPU seconds (``wait4``: the
    process and the children it waited for) and its peak RSS (the largest single process of its tree, as
    the stage measures it: bench/stage_peak.py says why not ``wait4``'s). Both times need an idle machine:
    on shared cores torch's OpenMP threads spin while they wait, so CPU seconds grow too."""
    with tempfile.TemporaryDirectory(prefix="stage-peak-") as scratch:
        peak_file = Path(scratch) / "peak.json"
        env = {**os.environ, "PYTHONPATH": str(code / "src"), "HISTOSYNTH_PROGRESS": "0", PEAK_FILE: str(peak_file)}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("stage_peak.py")),
                                 str(code / "stages" / f"{name}.py")], cwd=project, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{name} ({code}) failed:\n{stderr[-3000:]}")
        peak = json.loads(peak_file.read_text())
    return {"seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mib": round(max(peak["own_kib"], peak["children_kib"]) / 1024, 1)}
