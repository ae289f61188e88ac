"""Decoded images on disk, read a batch at a time, so that memory does not grow with their number.

A stage that needs the pixels of a whole split (to train on them, to search them for near
copies) decodes its PNGs once into an :class:`ImageStore`: one file of N images of one shape,
uint8, back to back, in a private folder under the temporary directory (``TMPDIR``; it needs
N x height x width x 3 bytes). Rows are then read with ``pread`` into fresh arrays: a batch
costs its own bytes, and the operating system's page cache keeps the file close (pages that
are not mapped into the process, so they are not its memory). The folder is removed when the
store that made it is closed or collected, or the process exits; a process killed outright
leaves it for the next store made on the machine to remove.

:class:`StoredImages` is the array-like view the library passes around in place of an
``(N, H, W, 3)`` uint8 array: ``len``, ``shape``, indexing with an int, a slice, an index array
or a mask (which reads those rows), and :meth:`StoredImages.take` for a lazy subset. It may
chain several stores (and in-memory arrays), and it pickles as the store paths, so that worker
processes read the same files. :func:`batches`, :func:`take` and :func:`concat` treat numpy
arrays and stored images alike.

The pixels read back are the pixels decoded: nothing computed from them changes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from histosynth import fsutil, progress
from histosynth.errors import DataError
from histosynth.parallel import ordered_map

log = logging.getLogger(__name__)

FOLDER_PREFIX = "histosynth-images-"
FILE_NAME = "images.u8"
# Free space left on the temporary file system beyond a store's own size.
SPARE_BYTES = 256 << 20
_FOLDER = re.compile(rf"^{re.escape(FOLDER_PREFIX)}([0-9]{{1,10}})-([0-9]{{1,20}})-")

Shape = tuple[int, int, int]


def _remove_stale_folders(parent: Path) -> None:
    """Remove the store folders of processes that no longer run (killed before they could)."""
    own = f"{FOLDER_PREFIX}{fsutil._owner_tag()}-"
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            match = _FOLDER.match(entry.name)
            if match and not entry.name.startswith(own) and entry.is_dir(follow_symlinks=False) \
                    and not fsutil._owner_alive(int(match.group(1)), match.group(2)):
                shutil.rmtree(entry.path, ignore_errors=True)


class ImageStore:
    """``count`` images of ``shape`` (H, W, 3) uint8 in the file ``path``; see the module docstring."""

    def __init__(self, path: Path | str, shape: Shape, count: int) -> None:
        self.path, self.shape, self.count = Path(path), tuple(int(s) for s in shape), int(count)
        self.image_bytes = int(np.prod(self.shape))
        self._fd: int | None = None
        self._fd_pid = -1

    def __len__(self) -> int:
        return self.count

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "shape": self.shape, "count": self.count}  # a reader, never the owner

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["shape"], state["count"])

    def _descriptor(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self._fd_pid = os.getpid()
            weakref.finalize(self, _close_quietly, self._fd)
        return self._fd

    def read(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """The images of ``rows`` (any order, repeats allowed) as a new (len(rows), H, W, 3) array."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape), np.uint8)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= self.count:
            raise IndexError(f"rows {int(rows.min())}..{int(rows.max())} outside a store of {self.count} images")
        flat = out.reshape(-1)
        runs = np.flatnonzero(np.diff(rows) != 1) + 1  # consecutive rows are read at once
        for start, stop in zip((0, *runs.tolist()), (*runs.tolist(), len(rows))):
            self._read_into(flat[start * self.image_bytes:stop * self.image_bytes],
                            int(rows[start]) * self.image_bytes)
        return out

    def read_range(self, start: int, stop: int) -> np.ndarray:
        return self.read(np.arange(start, min(stop, self.count)))

    def _read_into(self, buffer: np.ndarray, offset: int) -> None:
        view, fd = memoryview(buffer), self._descriptor()
        while len(view):
            got = os.preadv(fd, [view], offset)
            if got == 0:
                raise DataError(f"{self.path}: the image store ended early (was it removed while in use?)")
            view, offset = view[got:], offset + got


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class StoreWriter:
    """Appends images of one shape to a new store; :meth:`finish` returns it.

    ``expected``: how many images will come, when known: the free space is checked first."""

    def __init__(self, shape: Shape, expected: int | None = None) -> None:
        parent = Path(tempfile.gettempdir())
        _remove_stale_folders(parent)
        self.shape = tuple(int(s) for s in shape)
        needed = (expected or 0) * int(np.prod(self.shape))
        if expected:
            free = shutil.disk_usage(parent).free
            if free < needed + SPARE_BYTES:
                raise DataError(f"{parent}: {free / 2**30:.1f} GiB free, but {expected} decoded images of "
                                f"{self.shape[1]}x{self.shape[0]} px need {needed / 2**30:.1f} GiB there; free "
                                "some space or point TMPDIR at a larger disk")
        self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{fsutil._owner_tag()}-", dir=parent))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self._file = open(self.folder / FILE_NAME, "wb")  # noqa: SIM115 - closed by finish()
        self.count = 0

    def add(self, image: np.ndarray) -> None:
        self.add_batch(image[None])

    def add_batch(self, images: np.ndarray) -> None:
        if images.shape[1:] != self.shape or images.dtype != np.uint8:
            raise DataError(f"an image of shape {images.shape[1:]} {images.dtype} among images of {self.shape} uint8")
        try:
            self._file.write(np.ascontiguousarray(images).data)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise DataError(f"{self.folder.parent}: no space left for the decoded images; free some space or "
                                "point TMPDIR at a larger disk") from None
            raise
        self.count += len(images)

    def finish(self) -> ImageStore:
        self._file.close()
        store = ImageStore(self.folder / FILE_NAME, self.shape, self.count)
        # the folder lives as long as the store (and the writer: it is referenced from the store)
        store._writer = self  # type: ignore[attr-defined]
        return store

    def discard(self) -> None:
        self._file.close()
        self._cleanup()


def write_store(images: Iterable[np.ndarray], shape: Shape, expected: int | None = None) -> ImageStore:
    """A store of ``images`` (each (H, W, 3) uint8 of ``shape``, or batches (n, H, W, 3)), in order."""
    writer = StoreWriter(shape, expected)
    try:
        for image in images:
            if image.ndim == 3:
                writer.add(image)
            else:
                writer.add_batch(image)
    except BaseException:
        writer.discard()
        raise
    return writer.finish()


def decode_into_store(paths: Sequence[Path], read: Callable[[Path], np.ndarray], desc: str = "reading images",
                      workers: int | None = None) -> ImageStore | None:
    """Decode ``read(path)`` of every path (on ``workers`` threads) into a store; None for no paths.

    Images of different shapes are a DataError naming the first one that differs."""
    if not paths:
        return None
    images = ordered_map(read, paths, workers)
    first = next(iter(images))
    writer = StoreWriter(first.shape, len(paths))
    try:
        writer.add(first)
        bar = progress.bar(images, total=len(paths) - 1, desc=desc, unit="img", leave=False, min_total=2000)
        for path, image in zip(paths[1:], bar):
            if image.shape != first.shape:
                raise DataError(f"{path}: {image.shape[1]}x{image.shape[0]} px, but {paths[0]} is "
                                f"{first.shape[1]}x{first.shape[0]} px; the images of one set must have one size")
            writer.add(image)
    except BaseException:
        writer.discard()
        raise
    return writer.finish()


Source = Union[ImageStore, np.ndarray]


class StoredImages:
    """An (N, H, W, 3) uint8 array-like over stores (and arrays): reads what is indexed, nothing more."""

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, parts: Sequence[tuple[Source, np.ndarray]], shape: Shape | None = None) -> None:
        self.parts = [(source, np.asarray(rows, np.int64)) for source, rows in parts if len(rows)]
        shapes = {_image_shape(source) for source, _ in self.parts}
        if len(shapes) > 1:
            raise DataError(f"images of different sizes cannot make one set: {sorted(shapes)}")
        image_shape = shapes.pop() if shapes else tuple(shape or (0, 0, 3))
        self._ends = np.cumsum([len(rows) for _, rows in self.parts], dtype=np.int64)
        self.shape = (int(self._ends[-1]) if len(self._ends) else 0, *image_shape)

    @classmethod
    def of(cls, source: Source | None, shape: Shape | None = None) -> "StoredImages":
        """All images of a store or array (None: an empty set of ``shape``)."""
        if source is None:
            return cls([], shape)
        return cls([(source, np.arange(len(source)))], shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StoredImages(shape={self.shape}, parts={len(self.parts)})"

    def _positions(self, key: Any) -> np.ndarray | int:
        n = len(self)
        if isinstance(key, (int, np.integer)):
            index = int(key) + n if key < 0 else int(key)
            if not 0 <= index < n:
                raise IndexError(f"index {key} out of range for {n} images")
            return index
        if isinstance(key, slice):
            return np.arange(n)[key]
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (n,):
                raise IndexError(f"a mask of shape {index.shape} for {n} images")
            return np.flatnonzero(index)
        index = index.astype(np.int64).reshape(-1)
        if len(index) and (index.min() < -n or index.max() >= n):
            raise IndexError(f"indices outside 0..{n - 1}")
        return np.where(index < 0, index + n, index)

    def __getitem__(self, key: Any) -> np.ndarray:
        positions = self._positions(key)
        if isinstance(positions, int):
            return self._read(np.array([positions]))[0]
        return self._read(positions)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self._read(np.arange(len(self)))
        return array if dtype is None else array.astype(dtype)

    def _read(self, positions: np.ndarray) -> np.ndarray:
        out = np.empty((len(positions), *self.shape[1:]), np.uint8)
        part = np.searchsorted(self._ends, positions, side="right")
        for p in np.unique(part).tolist():
            mine = np.flatnonzero(part == p)
            source, rows = self.parts[p]
            local = rows[positions[mine] - (self._ends[p - 1] if p else 0)]
            out[mine] = source.read(local) if isinstance(source, ImageStore) else source[local]
        return out

    def take(self, index: Any) -> "StoredImages":
        """The images at ``index`` (an index array or a mask), lazily."""
        positions = self._positions(index)
        positions = np.atleast_1d(np.asarray(positions, np.int64))
        if not len(positions):
            return StoredImages([], self.shape[1:])
        part = np.searchsorted(self._ends, positions, side="right")
        parts = []
        # consecutive positions in one part stay one part; the order of ``index`` is kept
        breaks = np.flatnonzero(np.diff(part) != 0) + 1
        for start, stop in zip((0, *breaks.tolist()), (*breaks.tolist(), len(positions))):
            p = int(part[start])
            source, rows = self.parts[p]
            parts.append((source, rows[positions[start:stop] - (self._ends[p - 1] if p else 0)]))
        return StoredImages(parts, self.shape[1:])


def _image_shape(source: Source) -> Shape:
    return tuple(source.shape) if isinstance(source, ImageStore) else tuple(source.shape[1:])


Images = Union[np.ndarray, StoredImages]


def take(images: Images, index: Any) -> Images:
    """``images[index]``: lazily for stored images, a numpy copy for an array (as before)."""
    return images.take(index) if isinstance(images, StoredImages) else images[index]


def concat(parts: Sequence[Images]) -> Images:
    """The images of ``parts`` one after the other: an array when all are arrays, else stored images."""
    if all(isinstance(part, np.ndarray) for part in parts):
        return np.concatenate(parts)
    shape = next((tuple(p.shape[1:]) for p in parts if len(p)), tuple(parts[0].shape[1:]))
    chained: list[tuple[Source, np.ndarray]] = []
    for part in parts:
        if isinstance(part, StoredImages):
            chained += part.parts
        elif len(part):
            chained.append((part, np.arange(len(part))))
    return StoredImages(chained, shape)


def batches(images: Images, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, images[start:start + size])`` for every batch, in order."""
    for start in range(0, len(images), size):
        yield start, np.asarray(images[start:start + size])
