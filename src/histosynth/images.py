"""Reading, encoding and hashing images.

Images travel through the library as ``numpy.uint8`` arrays of shape (H, W, 3), RGB.
PNG encoding is deterministic (same pixels -> same bytes, no timestamps), which is what
makes the same params give the same MD5s.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from histosynth.errors import DataError
from histosynth.parallel import ordered_map
from histosynth.plain_files import open_plain_file

PNG_COMPRESS_LEVEL = 6
# The image formats (PIL's names) each reader opens; PIL tries no other decoder. Images from
# elsewhere are untrusted: without such a list PIL hands an EPS/PostScript file (whatever its
# name) to Ghostscript, and every further decoder is attack surface.
PNG_ONLY = ("PNG",)
# Images a user brings: folder: sources, synthetic sets made by another tool (docs/data.md, "Data sources").
USER_IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
# The largest image file read whole into memory (a package PNG is at most a few hundred kB).
MAX_IMAGE_FILE_BYTES = 64 << 20
# What PIL raises for files it cannot identify or decode (truncated, corrupt, not an image, a bomb).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                 Image.DecompressionBombError, Image.DecompressionBombWarning)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def not_in_formats(path: Path | str, formats: Iterable[str]) -> str:
    """What to say of a file that PIL recognised as none of ``formats``."""
    names = list(formats)
    shown = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"{path}: not a readable image (no {shown} image in its bytes, whatever its name says; other formats " \
           "are not opened)"


def read_png_rgb(path: Path | str, size: tuple[int, int] | None = None, follow_symlinks: bool = True,
                 formats: tuple[str, ...] = PNG_ONLY) -> np.ndarray:
    """Read an image written by this library (or, with ``formats``, a user's image) as (H, W, 3) RGB uint8.

    A file that is not a regular file (a FIFO, a device; with ``follow_symlinks`` false also a
    symbolic link), not an image in one of ``formats`` (whatever its name says), over PIL's
    decompression-bomb limit or, when ``size`` (width, height) is given, of another size, is a
    DataError naming it; nothing is decoded first.
    """
    try:
        with open_plain_file(path, follow_symlinks) as file, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file, formats=formats) as im:
                if size is not None and im.size != tuple(size):
                    raise DataError(f"{path}: {im.width}x{im.height} px, not the {size[0]}x{size[1]} px "
                                    "its metadata gives")
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Image.UnidentifiedImageError:
        raise DataError(not_in_formats(path, formats)) from None
    except DECODE_ERRORS as err:
        raise DataError(f"{path}: not a readable image ({first_line(err)})") from None


def _encode_and_write(item: tuple[Path, np.ndarray]) -> str:
    path, image = item
    data = encode_png(image)
    path.write_bytes(data)
    return md5_bytes(data)


def write_pngs(items: Iterable[tuple[Path, np.ndarray]], workers: int = 2) -> Iterator[str]:
    """Encode, write and hash images on ``workers`` threads; yield MD5s in input order.

    zlib and hashlib release the GIL, so threads keep both cores busy. At most
    ``4 * workers`` images are in flight, so memory does not grow with the number of images.
    """
    return ordered_map(_encode_and_write, items, workers, chunk=1)
