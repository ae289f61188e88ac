"""Run in a process of its own by tests/test_bounded_memory.py: one epoch of the GAN trainer (the train
stage's own function) over ``n`` training images, printing how far the peak resident memory rose
above the peak before it.

    python tests/train_memory_probe.py N FOLDER

The images are written as PNGs in the ingest layout first, one at a time.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from conftest import write_image_folder
from histosynth.config.gan import GanParams
from histosynth.generators.gan.train import train
from histosynth.generators.training import batches
from histosynth.manifest import read_manifest

CLASSES = ("a", "b", "c")
SIZE = 64  # large images, so that what grows with them stands out of the allocators' noise (a few MiB)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(n: int, folder: Path) -> None:
    # Splits up to batches.HOST_DATA_BYTES (64 MiB) are held as uint8, a bound that does not grow with
    # them; what is measured here is the path of larger splits, read from the store batch by batch.
    batches.HOST_DATA_BYTES = 0
    data = write_image_folder(folder / "data", {"train": n // len(CLASSES)}, classes=CLASSES, size=SIZE)
    params = GanParams(epochs=1, width=4, batch_size=64, threads=1, checkpoint_every=1, probe={"every": 0})
    # Reading the manifest grows pyarrow's allocator by steps with its rows (12 MiB more for 6,000 rows
    # than for 1,500, as much again for 24,000: metadata, not pixels); read once first, it is measured
    # apart from what the trainer holds.
    read_manifest(data)
    before = peak_mib()
    train(params, data, data, folder / "model", folder / "report")
    print(json.dumps({"images": n, "image_mib": n * SIZE * SIZE * 3 / 2**20, "rise_mib": peak_mib() - before}))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
