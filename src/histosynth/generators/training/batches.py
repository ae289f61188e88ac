"""The train split as the trainers see it: one epoch's batches of images in [-1, 1] and their labels.

The images stay in their image store (histosynth.image_store) and each batch is read when it
is needed (its pixels read on a thread while the batch before trains), so memory holds a few
batches whatever the size of the split (it used to hold the whole split as float32, four
times its bytes). A split of at most :data:`HOST_DATA_BYTES`, or on a GPU with room to spare,
is copied to the training device once as uint8 and the batches are cut from it there. Either way a batch's values are exactly those of
``to_model_range`` on its images, so training gives the same weights as from memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from histosynth.dataset import ImageSet
from histosynth.generators.training.data import to_model_range
from histosynth.image_store import batches as image_batches

log = logging.getLogger(__name__)

# Keep the training images on the GPU (as uint8) when they take at most this share of its free memory.
DEVICE_DATA_SHARE = 0.25
# Keep them in host memory (as uint8) when they take at most this many bytes: a bound that does not
# grow with the set, and small sets (the demo's 1.8 MB) train without reading every batch from the
# store, which cost the demo's training about 10 % of its time.
HOST_DATA_BYTES = 64 << 20
# Images per read when copying the split to the GPU or host memory.
COPY_BATCH = 4096


class TrainingImages:
    """The training set of one process, read a batch at a time (see the module docstring)."""

    def __init__(self, images: ImageSet, device: torch.device) -> None:
        self.images, self.device = images.images, device
        self.labels = torch.tensor(images.labels, dtype=torch.long)
        self.held: torch.Tensor | None = None  # the whole split as uint8, on ``device``, when it fits
        nbytes = int(np.prod(self.images.shape))
        if device.type == "cuda":
            if nbytes <= DEVICE_DATA_SHARE * torch.cuda.mem_get_info(device)[0]:
                self._hold()
            else:
                log.info("training images read from the image store a batch at a time (too large for the GPU's "
                         "free memory)")
        elif nbytes <= HOST_DATA_BYTES:
            self._hold()

    def _hold(self) -> None:
        self.held = torch.empty(tuple(self.images.shape), dtype=torch.uint8, device=self.device)
        for start, block in image_batches(self.images, COPY_BATCH):
            self.held[start : start + len(block)] = torch.from_numpy(block).to(self.device)
        self.labels = self.labels.to(self.device)

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, batches: list[torch.Tensor]) -> EpochBatches:
        """The batches of ``batches`` (index tensors into the set), in order."""
        return EpochBatches(self, batches)

    def read(self, index: torch.Tensor) -> np.ndarray | None:
        """The uint8 images of the rows ``index`` from the store (None when the split is held). Runs on
        the reader thread, so it stays in numpy: torch ops there would start a second team of CPU
        threads beside the training's (the demo trained 36 % slower that way)."""
        return None if self.held is not None else self.images[index.numpy()]

    def batch(self, index: torch.Tensor, read: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] and labels (B,) of the rows ``index`` (``read``: their
        :meth:`read`), on the training device."""
        if self.held is not None:
            index = index.to(self.device)
            return to_model_range(self.held[index]), self.labels[index]
        images, labels = to_model_range(torch.from_numpy(read)), self.labels[index]
        if self.device.type == "cuda":
            return images.pin_memory().to(self.device, non_blocking=True), labels.to(self.device)
        return images, labels


class EpochBatches:
    """Iterable of one epoch's ``(images, labels)`` batches; the next batch is read while one trains."""

    def __init__(self, source: TrainingImages, batches: list[torch.Tensor]) -> None:
        self.source, self.batches = source, batches

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def n_images(self) -> int:
        return sum(len(b) for b in self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        source, batches = self.source, self.batches
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="histosynth-batches") as reader:
            pending: Future | None = reader.submit(source.read, batches[0]) if batches else None
            for i, index in enumerate(batches):
                read = pending.result()
                pending = reader.submit(source.read, batches[i + 1]) if i + 1 < len(batches) else None
                yield source.batch(index, read)
