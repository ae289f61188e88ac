"""The per-image work of featurenet, curate and QA holds a batch of images, not the set: run over 4x
the images in a process of its own (tests/memory_probe.py), its peak resident memory rises by a small
share of the extra images' bytes (in memory as before, the pixel search alone held 4 bytes per pixel
of the whole reference set, the flips of the queries 8 x 4 more, the histograms 8 per pixel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SIZE = 32


def _rise(n: int) -> dict:
    # A fixed mmap threshold: glibc's default one rises to 32 MiB once large blocks are freed, and
    # freed temporaries then stay on its heap, a few MiB more the more batches ran; what is
    # measured here is what the code holds.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HERE / "memory_probe.py"), str(n), str(SIZE)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_the_number_of_images():
    small, large = _rise(1500), _rise(6000)
    extra_images = large["image_mib"] - small["image_mib"]  # 13.2 MiB of uint8 pixels
    # what still grows with the set: features (64 floats) and histograms (96 int64) per image, < 1 KiB
    assert large["rise_mib"] - small["rise_mib"] < 0.15 * extra_images, (small, large)


def _training_rise(n: int, folder: Path) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HERE / "train_memory_probe.py"), str(n), str(folder)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_training_memory_does_not_grow_with_the_number_of_images(tmp_path):
    # The trainer used to hold the split as uint8 and float32 (5 bytes a pixel, 141 MiB more for 2,400
    # more images of 64 px); it now reads each batch from the image store. Runs differ by a few MiB
    # (threads' allocations), hence the margin.
    small, large = _training_rise(800, tmp_path / "small"), _training_rise(3200, tmp_path / "large")
    extra_images = large["image_mib"] - small["image_mib"]  # 28.1 MiB of uint8 pixels
    assert large["rise_mib"] - small["rise_mib"] < 0.5 * extra_images, (small, large)


EVAL_PROBE = """
import json, resource, sys
import numpy as np
from histosynth.classifier.embed import embed, predict_proba
from histosynth.classifier.model import SmallCNN
images = np.random.default_rng(0).integers(0, 256, (64, 224, 224, 3), dtype=np.uint8)
model = SmallCNN(8, 224, 16)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
predict_proba(model, images), embed(model, images)
print(json.dumps({"rise_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def test_evaluating_large_images_holds_a_few_of_them_at_a_time():
    # 512 images a batch at any size made 1.6 GB activations per layer at 224 px (the benchmark peaked
    # at 4.6 GB on 3k images); a batch now holds as many pixels as 512 images of 32 px. One batch of
    # these 64 images would raise the peak by 400 MiB (two 205 MiB activations of the first layer).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", EVAL_PROBE], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["rise_mib"] < 120


def _benchmark_rise(n: int, out: Path) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20), "HISTOSYNTH_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(HERE / "benchmark_memory_probe.py"), str(n), str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.environ.get("HISTOSYNTH_MEMORY_BENCHMARK"),
                    reason="set HISTOSYNTH_MEMORY_BENCHMARK=1 to measure the benchmark stage's workers at 224 px "
                           "(1.5 minutes; make test stays under its 15)")
def test_the_benchmark_and_its_workers_hold_no_more_memory_for_more_images(tmp_path):
    # The stage's peak is one process's (bench/stage_peak.py), at 224 px a training worker's: its
    # imports, one training step, one evaluation batch (2.5 GB at batch 64 on 1k and 3k images). Workers
    # that got the images as arrays instead of store paths held 53 MiB more here (the parent 149 MiB more:
    # it pickled them); evaluating 512 images a batch, as before, 247 MiB more.
    small, large = _benchmark_rise(60, tmp_path / "small"), _benchmark_rise(240, tmp_path / "large")
    extra_images = large["image_mib"] - small["image_mib"]  # 51.7 MiB of uint8 pixels
    assert large["worker_peak_mib"] - small["worker_peak_mib"] < 0.25 * extra_images, (small, large)
    assert large["rise_mib"] - small["rise_mib"] < 0.25 * extra_images, (small, large)
