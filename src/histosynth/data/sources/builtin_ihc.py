"""``builtin:ihc``: labelled tissue tiles from the immunohistochemistry image scikit-image ships.

The image (``skimage.data.immunohistochemistry()``, 512 x 512 RGB) is human colon tissue
stained for FHL2 with DAB (brown) and counterstained with hematoxylin (blue); it is part of
the scikit-image wheel, so the demo needs no network, and scikit-image notes no known
copyright restrictions.

Tiles
    32 x 32 source pixels on a 16-pixel grid (neighbouring tiles overlap by half), so every
    ``data.image_size`` gets the same tiles and labels; other sizes are Lanczos-resampled
    from the 32-pixel tile (28 is a slight reduction, 64 and larger add no detail).

Stain rule
    Each pixel is unmixed into hematoxylin (H) and DAB (D) optical densities by colour
    deconvolution (``skimage.color.rgb2hed``, Ruifrok & Johnston's stain vectors) and called

    - blank (glass or lumen): H < 0.010 and D < 0.015,
    - DAB: D >= 0.030 (the trough of the image's two-peaked DAB histogram),
    - nuclear: H >= 0.030 and not DAB (Otsu's threshold of H in unstained tissue is 0.029).

    A tile is then, in this order:

    1. left out when at least 50% of its pixels are blank (it shows no tissue; the image has
       too little empty glass, all in two places, for a background class in every split);
    2. ``dab_positive`` (DAB-stained epithelium) when at least 50% of its pixels are DAB;
    3. left out when 20-50% of its pixels are DAB (it straddles a gland border and belongs
       to no single class);
    4. ``hematoxylin_rich`` (nuclei-dense stroma) when at least 12% of its pixels are nuclear;
    5. ``stroma`` (connective tissue with few nuclei) otherwise.

    The thresholds were read off the histograms of the pixel values and tile fractions of
    this image; 12% splits the unstained tissue into two classes of similar size.

Splits
    Horizontal bands: train rows 0-351, val rows 352-431, test rows 432-511. A tile belongs
    to the band that contains it whole; tiles crossing a band border are left out, so no two
    splits share a pixel. Every class occurs in every band (the gland-free lower half holds
    most of the stroma), giving about 75/13/12 percent of the tiles.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
from skimage import data as skdata
from skimage.color import rgb2hed

from histosynth.config.data import DataParams
from histosynth.data.image_decode import fit_square
from histosynth.data.source_images import SourceImages, SplitImages
from histosynth.errors import ConfigError

log = logging.getLogger(__name__)

NAME = "ihc"
CLASS_NAMES = ("dab_positive", "hematoxylin_rich", "stroma")
TILE = 32
STRIDE = 16

BLANK_H_MAX = 0.010
BLANK_D_MAX = 0.015
DAB_MIN = 0.030
NUCLEAR_H_MIN = 0.030

BLANK_FRACTION_DROP = 0.50
DAB_FRACTION_MIN = 0.50
BORDER_DAB_FRACTION_MIN = 0.20
NUCLEAR_FRACTION_MIN = 0.12

# Split -> [first row, end row) of its band in the 512-row image.
BANDS = {"train": (0, 352), "val": (352, 432), "test": (432, 512)}


def stain_fractions(tile: np.ndarray) -> tuple[float, float, float]:
    """Fractions of blank, DAB and nuclear pixels in an RGB uint8 tile (module docstring)."""
    hed = rgb2hed(tile)
    h, d = hed[..., 0], hed[..., 2]
    dab = d >= DAB_MIN
    blank = (h < BLANK_H_MAX) & (d < BLANK_D_MAX)
    nuclear = (h >= NUCLEAR_H_MIN) & ~dab
    return float(blank.mean()), float(dab.mean()), float(nuclear.mean())


def classify_tile(tile: np.ndarray) -> int | None:
    """The label of a tile under the stain rule, or None for a tile left out (no tissue, gland border)."""
    blank, dab, nuclear = stain_fractions(tile)
    if blank >= BLANK_FRACTION_DROP:
        return None
    if dab >= DAB_FRACTION_MIN:
        return CLASS_NAMES.index("dab_positive")
    if dab >= BORDER_DAB_FRACTION_MIN:
        return None
    if nuclear >= NUCLEAR_FRACTION_MIN:
        return CLASS_NAMES.index("hematoxylin_rich")
    return CLASS_NAMES.index("stroma")


def band_of(top: int) -> str | None:
    """The split whose band holds a tile starting at row ``top`` whole, or None if it crosses."""
    for split, (start, end) in BANDS.items():
        if start <= top and top + TILE <= end:
            return split
    return None


def load_builtin(params: DataParams) -> SourceImages:
    if params.source_arg != NAME:
        raise ConfigError(f"data.source = {params.source!r}: unknown built-in data set; available: builtin:{NAME}")
    image = skdata.immunohistochemistry()
    rows, cols = image.shape[:2]
    tiles: dict[str, list[tuple[int, int, int]]] = {split: [] for split in BANDS}
    crossing = unclassed = 0
    for top in range(0, rows - TILE + 1, STRIDE):
        split = band_of(top)
        for left in range(0, cols - TILE + 1, STRIDE):
            if split is None:
                crossing += 1
                continue
            label = classify_tile(image[top:top + TILE, left:left + TILE])
            if label is None:
                unclassed += 1
                continue
            tiles[split].append((top, left, label))
    log.info("builtin:ihc: %d tiles of %d px (stride %d); left out %d crossing a split border and"
             " %d showing no tissue or a gland border", sum(map(len, tiles.values())), TILE, STRIDE, crossing,
             unclassed)
    return SourceImages(CLASS_NAMES, partial(_split_of, image, tiles, params.image_size))


def _split_of(image: np.ndarray, tiles: dict[str, list[tuple[int, int, int]]], size: int,
              split: str) -> SplitImages:
    chosen = tiles[split]

    def tile_image(i: int) -> np.ndarray:
        top, left, _ = chosen[i]
        return fit_square(image[top:top + TILE, left:left + TILE], size)

    return SplitImages(
        labels=np.array([label for _, _, label in chosen], dtype=np.int64),
        ids=[f"ihc_y{top:03d}_x{left:03d}" for top, left, _ in chosen],
        origins=[f"skimage.data.immunohistochemistry()[{top}:{top + TILE}, {left}:{left + TILE}]"
                 for top, left, _ in chosen],
        image=tile_image,
    )
