"""The train split as the trainers see it: one epoch's batches of images in [-1, 1] and their labels.

The images stay in their image store (histosynth.image_store) and each batch is read when it
is needed, the next one on a thread while the current one trains, so memory holds a few
batches whatever the size of the split (it used to hold the whole split as float32, four
times its bytes). On a GPU with room to spare the split is copied there once as uint8 and the
batches are cut on the device. Either way a batch's values are exactly those of
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
# Images per read when copying the split to the GPU.
COPY_BATCH = 4096


class TrainingImages:
    """The training set of one process, read a batch at a time (see the module docstring)."""

    def __init__(self, images: ImageSet, device: torch.device) -> None:
        self.images, self.device = images.images, device
        self.labels = torch.tensor(images.labels, dtype=torch.long)
        self.on_device: torch.Tensor | None = None
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if int(np.prod(self.images.shape)) <= DEVICE_DATA_SHARE * free:
                self.on_device = torch.empty(tuple(self.images.shape), dtype=torch.uint8, device=device)
                for start, block in image_batches(self.images, COPY_BATCH):
                    self.on_device[start : start + len(block)] = torch.from_numpy(block).to(device)
                self.labels = self.labels.to(device)
            else:
                log.info("training images read from the image store a batch at a time (too large for the GPU's "
                         "free memory)")

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, batches: list[torch.Tensor]) -> EpochBatches:
        """The batches of ``batches`` (index tensors into the set), in order."""
        return EpochBatches(self, batches)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] and labels (B,) of the rows ``index``, on the training device."""
        if self.on_device is not None:
            index = index.to(self.device)
            return to_model_range(self.on_device[index]), self.labels[index]
        rows = index.numpy()
        images, labels = to_model_range(self.images[rows]), self.labels[index]
        if self.device.type == "cuda":
            images, labels = images.pin_memory(), labels.pin_memory()
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
        device = self.source.device
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="histosynth-batches") as reader:
            pending: Future | None = reader.submit(self.source.batch, self.batches[0]) if self.batches else None
            for i in range(len(self.batches)):
                images, labels = pending.result()
                pending = reader.submit(self.source.batch, self.batches[i + 1]) if i + 1 < len(self.batches) else None
                yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
