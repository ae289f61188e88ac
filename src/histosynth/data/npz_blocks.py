"""An array inside a ``.npz`` file read a block of rows at a time, compressed or not.

``numpy.load`` reads a whole member into memory: a split of PathMNIST at 224 px is 13.5 GB. Here
the member's ``.npy`` header is read first (shape and dtype, so a wrong array is refused before
any pixel is read), then its rows stream through in blocks of about BLOCK_BYTES, and only the
rows asked for are kept.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

BLOCK_BYTES = 32 << 20


@dataclass(frozen=True)
class ArrayHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool


@contextmanager
def _member(path: Path, name: str) -> Iterator[tuple[IO[bytes], ArrayHeader]]:
    """The member ``name`` (without ``.npy``) opened just past its header, and the header.

    KeyError when there is no such member; zipfile.BadZipFile, ValueError or OSError when the file
    or the header is not what numpy writes."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
        yield stream, ArrayHeader(tuple(shape), np.dtype(dtype), bool(fortran_order))


def read_header(path: Path, name: str) -> ArrayHeader:
    with _member(path, name) as (_, header):
        return header


def read_array(path: Path, name: str) -> np.ndarray:
    """The whole member (for small arrays, such as labels)."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def read_rows(path: Path, name: str, rows: np.ndarray) -> Iterator[np.ndarray]:
    """Blocks of the member's ``rows`` (ascending, no repeats), in order, as (k, *shape[1:]) arrays.

    A Fortran-ordered array has no contiguous rows: it is read whole (numpy's way)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) and (np.any(np.diff(rows) <= 0)):
        raise ValueError("rows must be ascending without repeats")
    with _member(path, name) as (stream, header):
        if header.fortran_order:
            whole = read_array(path, name)
            for start in range(0, len(rows), 1024):
                yield np.ascontiguousarray(whole[rows[start:start + 1024]])
            return
        row_shape, n = header.shape[1:], header.shape[0] if header.shape else 0
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * header.dtype.itemsize
        if len(rows) and rows[-1] >= n:
            raise ValueError(f"row {int(rows[-1])} asked of an array of {n} rows")
        per_block = max(1, BLOCK_BYTES // max(1, row_bytes))
        done = 0  # rows of the member read so far
        wanted = 0  # position in ``rows``
        while wanted < len(rows):
            stop = min(n, done + per_block)
            data = stream.read((stop - done) * row_bytes)
            if len(data) != (stop - done) * row_bytes:
                raise ValueError(f"{name}.npy ends after {done + len(data) // max(1, row_bytes)} of its {n} rows")
            block = np.frombuffer(data, header.dtype).reshape(stop - done, *row_shape)
            upto = int(np.searchsorted(rows, stop))
            if upto > wanted:
                yield block[rows[wanted:upto] - done]  # a copy: the block's bytes go
            wanted, done = upto, stop
