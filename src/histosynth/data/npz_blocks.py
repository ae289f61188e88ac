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

BLOCK_BYTES = 8 << 20  # a block, the rows kept from it and the previous rows: about 24 MiB at most
# zipfile's read(n) holds copies of up to n bytes while it gathers them: a block is filled by reads
# of this size instead, so reading a block costs the block and the rows kept from it.
READ_BYTES = 1 << 20


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
            block = _read_exactly(stream, (stop - done) * row_bytes, name, done, n, row_bytes)
            block = block.view(header.dtype).reshape(stop - done, *row_shape)
            upto = int(np.searchsorted(rows, stop))
            if upto > wanted:
                yield block[rows[wanted:upto] - done]  # a copy: the block's bytes go
            del block  # before the next one is read
            wanted, done = upto, stop


def _read_exactly(stream: IO[bytes], size: int, name: str, done: int, n: int, row_bytes: int) -> np.ndarray:
    """The next ``size`` bytes of ``stream`` as a uint8 array, READ_BYTES at a time."""
    block = np.empty(size, np.uint8)
    view, got = memoryview(block), 0
    while got < size:
        chunk = stream.read(min(READ_BYTES, size - got))
        if not chunk:
            raise ValueError(f"{name}.npy ends after {done + got // max(1, row_bytes)} of its {n} rows")
        view[got:got + len(chunk)] = chunk
        got += len(chunk)
    return block
