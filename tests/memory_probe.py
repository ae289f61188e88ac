"""Run in a process of its own by tests/test_bounded_memory.py: the per-image work of featurenet, curate
and QA over ``n`` stored images, printing how far the peak resident memory rose above the peak before it.

    python tests/memory_probe.py N SIZE

Images are written to an image store in batches (nothing here holds them all); then the feature
net's forward pass, a classifier's training steps, the colour histograms and duplicate hashes, and the
pixel near-copy search of a few queries (all eight flips and turns) against every image, in blocks
of 2 MiB of vectors.
"""

from __future__ import annotations

import json
import resource
import sys

import numpy as np

from histosynth.classifier.embed import embed
from histosynth.classifier.model import SmallCNN
from histosynth.classifier.train import Phase, Schedule, Stream, train_classifier
from histosynth.config.classifier import FeaturenetParams
from histosynth.dataset import ImageSet
from histosynth.image_store import StoredImages, write_store
from histosynth.qa import evaluate, knn
from histosynth.qa.metrics import memorisation
from histosynth.qa.pixel_space import PixelVectors, variants

QUERIES = 16
# Smaller blocks than the search's own (32 MiB), so that sets of a few thousand small images span
# many: what is measured is that memory stops at a block, whatever its size.
knn.BLOCK_BYTES = knn.QUERY_BYTES = 2 << 20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    batches = (rng.integers(0, 256, (min(500, n - start), size, size, 3), dtype=np.uint8) for start in range(0, n, 500))
    images = StoredImages.of(write_store(batches, (size, size, 3), n))
    labels = np.arange(n) % 3
    model = SmallCNN(3, size, width=4)
    recipe = FeaturenetParams(epochs=1, width=4, batch_size=32)
    queries = images.take(np.arange(QUERIES))
    before = peak_mib()
    embed(model, images)
    schedule = Schedule((Phase(3, (Stream(ImageSet(images, labels, ("a", "b", "c"))),)),), eval_every=3)
    train_classifier(schedule, ImageSet(images.take(np.arange(600)), labels[:600], ("a", "b", "c")), recipe)
    evaluate._histograms(images, 32)
    evaluate._orientation_free_md5s(images)
    memorisation.nearest_originals(variants(queries), PixelVectors(images), np.arange(n).astype(str))
    print(json.dumps({"images": n, "image_mib": n * size * size * 3 / 2**20, "rise_mib": peak_mib() - before}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
