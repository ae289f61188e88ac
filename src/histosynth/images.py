"""Reading, encoding and hashing images.

Images travel through the library as ``numpy.uint8`` arrays of shape (H, W, 3), RGB.
PNG encoding is deterministic (same pixels -> same bytes, no timestamps), which is what
makes the same params give the same MD5s.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from histosynth.parallel import ordered_map

PNG_COMPRESS_LEVEL = 6


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


def read_png_rgb(path: Path | str) -> np.ndarray:
    """Read a PNG written by this library (already RGB uint8)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


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
