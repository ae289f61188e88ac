"""A torch Dataset over package images (kept apart so that reading a package does not import torch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from histosynth.package.pixels import read_package_image


class PackageDataset(Dataset):
    """``(image, label)`` pairs; an image is read from disk when it is indexed, so memory stays flat
    and DataLoader workers share the reading."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], class_names: Sequence[str],
                 transform: Callable[[torch.Tensor], Any] | None, sizes: Sequence[tuple[int, int]]) -> None:
        self.paths = list(paths)
        self.labels = list(labels)
        self.class_names = list(class_names)
        self.transform = transform
        self.sizes = list(sizes)  # (width, height) of each image, from the metadata

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        pixels = read_package_image(self.paths[index], *self.sizes[index]).transpose(2, 0, 1)  # HWC -> CHW
        image = torch.from_numpy(pixels.astype(np.float32)).div_(255.0)
        return (self.transform(image) if self.transform else image), self.labels[index]
