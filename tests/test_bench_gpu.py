"""bench/speed/gpu.py --dry-run: the GPU throughput script, end to end on CPU at tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from histosynth.config.gan import ARCHS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_trains_and_samples_every_arch_in_both_precisions(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "speed" / "gpu.py"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert results["dry_run"] and results["device_name"] == "cpu (dry run)" and not results["skipped"]
    runs = {(r["arch"], r["precision"]): r for r in results["runs"]}
    assert set(runs) == {(arch, p) for arch in ARCHS for p in ("fp32", "bf16")}
    for (arch, _), run in runs.items():
        assert run["train_images_per_s"] > 0 and run["device"] == "cpu"
        assert set(run["sampling"]) == ({"ddim", "dpm"} if arch == "ddpm" else {"gan"})
        assert all(s["images_per_s"] > 0 and s["images"] == results["sample_images"] for s in run["sampling"].values())
    assert runs[("projected", "bf16")]["feature_network"]["name"] == "efficientnet-lite0"
    table = (tmp_path / "gpu.md").read_text()
    assert "| projected | 32 | bf16 |" in table and "ddim" in table and "dpm" in table
    assert runs[("cwgan128", "fp32")]["image_size"] == 64  # its smallest size
