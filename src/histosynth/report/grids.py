"""Sample grids: a fixed, seeded choice of a class's images, tiled and enlarged pixel for pixel.

Tiles are enlarged by nearest neighbour (each pixel becomes a block) so that 28-64 px tiles
can be inspected without the blur that smooth scaling would add.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.util import montage

from histosynth.errors import DataError
from histosynth.images import encode_png, read_png_rgb

SAMPLES_PER_GRID = 16
GRID_COLUMNS = 4
TILE_DISPLAY_PX = 96  # tiles are enlarged by a whole factor to at least about this size
PADDING_PX = 2
SEED = 0


def choose_rows(rows: pd.DataFrame, label: int, n: int = SAMPLES_PER_GRID, seed: int = SEED) -> pd.DataFrame:
    """``n`` of ``rows`` (one class of a manifest) drawn without replacement, the same for the same ids.

    Rows are ordered by id before drawing, so the choice does not depend on manifest row order;
    the class label enters the seed, so classes do not share draw positions.
    """
    ordered = rows.sort_values("id", kind="stable")
    rng = np.random.default_rng([seed, label])
    picked = np.sort(rng.choice(len(ordered), size=min(n, len(ordered)), replace=False))
    return ordered.iloc[picked]


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` (H, W, 3) with every pixel repeated ``factor`` times in both directions."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def enlargement(size: int) -> int:
    return max(1, math.ceil(TILE_DISPLAY_PX / size))


def sample_grid(folder: Path, rows: pd.DataFrame, columns: int = GRID_COLUMNS) -> bytes:
    """PNG of the images at ``folder / rows.path``, ``columns`` per row, on a white background."""
    images = [read_image(folder / rel) for rel in rows["path"]]
    sizes = {image.shape for image in images}
    if len(sizes) != 1:
        raise DataError(f"{folder}: the chosen images differ in size ({sorted(sizes)}); expected one image size")
    factor = enlargement(images[0].shape[0])
    tiles = np.stack([enlarge(image, factor) for image in images])
    grid_shape = (math.ceil(len(tiles) / columns), min(columns, len(tiles)))
    grid = montage(tiles, grid_shape=grid_shape, padding_width=PADDING_PX, fill=(255, 255, 255), channel_axis=-1)
    return encode_png(grid)


def enlarge_to_width(png: Path, width: int = 900) -> bytes:
    """PNG of the image at ``png`` enlarged by the whole factor that brings it closest to ``width`` from below."""
    image = read_image(png)
    return encode_png(enlarge(image, max(1, width // image.shape[1])))


def pair(left: Path, right: Path) -> bytes:
    """PNG of the images at ``left`` and ``right`` side by side, enlarged like the grid tiles, a white gap between."""
    a, b = read_image(left), read_image(right)
    if a.shape != b.shape:
        raise DataError(f"{left} ({a.shape[1]}x{a.shape[0]}) and {right} ({b.shape[1]}x{b.shape[0]}) differ in size; "
                        "expected one image size")
    factor = enlargement(a.shape[0])
    gap = np.full((a.shape[0] * factor, 4 * PADDING_PX, 3), 255, dtype=np.uint8)
    return encode_png(np.concatenate([enlarge(a, factor), gap, enlarge(b, factor)], axis=1))


def as_png(path: Path) -> bytes:
    """PNG bytes of the image at ``path``, decoded and encoded again: an unreadable file is a DataError here,
    not a broken picture in the page."""
    return encode_png(read_image(path))


def read_image(path: Path) -> np.ndarray:
    """The RGB image at ``path``; a DataError naming the file when it cannot be read."""
    try:
        return read_png_rgb(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable image ({err}); rebuild it with the stage that writes it") from None
