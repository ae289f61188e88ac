"""One package image's pixels, read as defensively as the rest of a package (histosynth.package.load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from histosynth.errors import DataError
from histosynth.images import read_png_rgb


def read_package_image(path: Path, width: int, height: int) -> np.ndarray:
    """One package image as (H, W, 3) uint8 of the size its metadata row gives, or a DataError: a
    link, a FIFO, another format or size, a decompression bomb (histosynth.images.read_png_rgb)."""
    try:
        return read_png_rgb(path, (width, height), follow_symlinks=False)
    except DataError as err:
        raise DataError(f"{err}; check the package with `histosynth verify`") from None
