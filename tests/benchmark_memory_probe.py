"""Run in a process of its own by tests/test_bounded_memory.py: the benchmark stage's own function over
stored images of 224 px (``n`` real train images, half as many synthetic, a quarter as many in each of
val and test), two arms trained at once in worker processes as the stage does, printing how far the
peak resident memory of this process and of its workers rose.

    python tests/benchmark_memory_probe.py N OUT_DIR

The images go to image stores in batches (nothing here holds them all). A worker's peak is its
imports plus one training step and one evaluation batch: none of it may grow with the images.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import numpy as np

from histosynth.benchmark.arms import BenchmarkData
from histosynth.benchmark.run import benchmark
from histosynth.config.benchmark import BenchmarkParams
from histosynth.dataset import ImageSet
from histosynth.image_store import StoredImages, write_store

SIZE = 224
CLASSES = ("a", "b", "c")


def stored_set(n: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    chunks = (rng.integers(0, 256, (min(50, n - start), SIZE, SIZE, 3), dtype=np.uint8) for start in range(0, n, 50))
    store = write_store(chunks, (SIZE, SIZE, 3), n)
    return ImageSet(StoredImages.of(store), np.arange(n) % len(CLASSES), CLASSES)


def peak_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux; RUSAGE_CHILDREN: the largest worker


def main(n: int, out: Path) -> None:
    empty = ImageSet(StoredImages([], (SIZE, SIZE, 3)), np.zeros(0, np.int64), CLASSES)
    data = BenchmarkData(real_train=stored_set(n, 0), affine_children=empty, synthetic=stored_set(n // 2, 1),
                         synthetic_children=empty, val=stored_set(n // 4, 2), test=stored_set(n // 4, 3))
    # two trainings, two workers (the stage's default); each scored on val once, then predicts test
    params = BenchmarkParams(arms=["real_only", "augmented"], seeds=[0], steps=2, eval_every=2, batch_size=8,
                             threads=2, bootstrap={"resamples": 100})
    before = peak_mib(resource.RUSAGE_SELF)
    benchmark(params, data, out)
    print(json.dumps({"images": 2 * n, "image_mib": 2 * n * SIZE * SIZE * 3 / 2**20,
                      "rise_mib": peak_mib(resource.RUSAGE_SELF) - before,
                      "worker_peak_mib": peak_mib(resource.RUSAGE_CHILDREN)}))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
