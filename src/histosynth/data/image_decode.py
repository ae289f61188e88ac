"""Opening user image files safely and turning them into RGB squares of one size.

Decisions (docs/data.md quotes them):

- Every image mode PIL reads becomes 8-bit RGB. Grayscale and 1-bit images get three equal
  channels, palette images their palette colours; 16-bit images (``I;16``, ``I``) are scaled
  to 8 bit as ``round(value / 257)`` after clipping to 0..65535, so full white stays white
  (PIL already reduces 16-bit RGB PNGs to 8 bit). Transparency (RGBA, LA, palette with a
  transparent colour) is composited on white, the colour of an empty slide. CMYK, YCbCr and
  HSV use PIL's conversion. 32-bit float images are refused: they have no agreed range.
- Only PNG, JPEG, TIFF and BMP files are opened, whatever the file name says (PIL tries no other
  decoder: an EPS file named ``.png`` never reaches Ghostscript); only plain files, never a FIFO or
  a device.
- The EXIF orientation tag is applied (camera images come out upright); a multi-page TIFF
  gives its first page.
- Images with more pixels than PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``,
  about 89 megapixels) are refused before any pixel data is decoded.
- Resizing: the largest centred square is cut out (an odd margin loses its extra pixel on
  the right or bottom), then resampled with PIL's Lanczos filter. Cells keep their shape
  (no squashing of 4:3 camera frames); the cost is the edges of non-square images.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from histosynth.errors import DataError
from histosynth.images import DECODE_ERRORS as _DECODE_ERRORS
from histosynth.images import USER_IMAGE_FORMATS, not_in_formats
from histosynth.plain_files import NotAPlainFile, open_plain_file

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
RESAMPLE = Image.Resampling.LANCZOS

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class UnreadableImageError(DataError):
    """An image file that cannot be turned into RGB pixels; the message says why."""


def read_image_rgb(path: Path, size: int) -> np.ndarray:
    """Decode ``path`` into a (size, size, 3) uint8 RGB array (module docstring: how)."""
    try:
        with open_plain_file(path) as file, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file, formats=USER_IMAGE_FORMATS) as im:
                im.load()
                upright = ImageOps.exif_transpose(im)  # a decoded copy that outlives the file
    except NotAPlainFile as err:  # swapped for a link, FIFO or device since the folder was listed
        raise UnreadableImageError(str(err)) from None
    except Image.UnidentifiedImageError:
        raise UnreadableImageError(not_in_formats(path, USER_IMAGE_FORMATS)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImageError(
            f"{path}: larger than the decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except _DECODE_ERRORS as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableImageError(f"{path}: not a readable image ({reason})") from None
    try:
        rgb = to_rgb(upright)
    except ValueError as err:
        raise UnreadableImageError(f"{path}: {err}") from None
    return fit_square(rgb, size)


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as 8-bit RGB (transparency on white, 16 bit scaled down).

    Raises ValueError for a mode that has no sensible RGB reading.
    """
    if im.mode == "RGB":
        return im
    if im.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(im).astype(np.float64)
        eight = np.rint(np.clip(wide, 0, 65535) / 257.0).astype(np.uint8)
        return Image.fromarray(eight).convert("RGB")
    if im.mode == "F":
        raise ValueError("32-bit float images are not supported; save it as 8- or 16-bit")
    if im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def fit_square(im: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and Lanczos-resample to (size, size); uint8 RGB array out."""
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    width, height = im.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    if (width, height) != (side, side):
        im = im.crop((left, top, left + side, top + side))
    if side != size:
        im = im.resize((size, size), RESAMPLE)
    return np.asarray(im, dtype=np.uint8)
