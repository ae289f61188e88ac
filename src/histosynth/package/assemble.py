"""Placing image files in the package: hard link or copy, then hash, on all cores, streaming.

A hard link (``package.link: auto``) makes the package file the *same* file (inode) as the
workspace file in data/real or data/synthetic: no bytes are copied and no disk space is used.
That is safe because nothing in the pipeline edits an image in place (stages replace whole
output folders) and DVC's default cache types (reflink, copy) give each workspace file its own
inode. With ``cache.type`` hardlink the workspace file already is DVC's read-only cache file,
and the package file then is too. Where linking is impossible (another filesystem, no
permission) the file is copied instead, per file. ``package.link: copy`` always copies.

Every placed file is read back and hashed, so a workspace file that no longer matches its
manifest's MD5 stops the stage instead of being published.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path


from histosynth import progress
from histosynth.errors import DataError
from histosynth.images import MAX_IMAGE_FILE_BYTES, md5_bytes
from histosynth.parallel import ordered_map
from histosynth.plain_files import NotAPlainFile, open_plain_file

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    expected_md5: str


@dataclass(frozen=True)
class Placed:
    md5: str
    width: int
    height: int
    linked: bool


def png_size(data: bytes, where: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which the PNG format puts first."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise DataError(f"{where}: not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def place_file(job: Job, link: bool) -> Placed:
    try:
        # plain files only (a link is followed: it may be DVC's cache): a FIFO or a device in data/real would hang
        # the stage, an oversized file fill the memory
        with open_plain_file(job.source, follow_symlinks=True) as file:
            read = os.fstat(file.fileno())
            if read.st_size > MAX_IMAGE_FILE_BYTES:
                raise DataError(f"{job.source}: larger than {MAX_IMAGE_FILE_BYTES >> 20} MiB, which no image the "
                                "pipeline writes is; rerun the stage that wrote it (`dvc repro`)")
            data = file.read()
    except FileNotFoundError:
        raise DataError(f"{job.source}: listed in its manifest but missing; rerun the stage that wrote it "
                        "(`dvc repro`)") from None
    except NotAPlainFile as err:
        raise DataError(f"{err}; rerun the stage that wrote it (`dvc repro`)") from None
    linked = link and _link(job.source, job.target, read)
    if not linked:
        job.target.write_bytes(data)
    md5 = md5_bytes(data)
    if md5 != job.expected_md5:
        raise DataError(f"{job.source}: MD5 {md5} differs from its manifest's {job.expected_md5}; the file was "
                        "changed after it was written (rerun the stage that wrote it: `dvc repro`)")
    return Placed(md5, *png_size(data, job.source), linked)


def _link(source: Path, target: Path, read: os.stat_result) -> bool:
    """Hard-link ``target`` to ``source`` if that still is the file just read (the same inode); False where
    linking is impossible (another filesystem, no permission, link count at its limit...): copy instead."""
    try:
        os.link(source, target)
    except OSError:
        return False
    placed = os.stat(target)
    if (placed.st_dev, placed.st_ino) != (read.st_dev, read.st_ino):  # replaced meanwhile: copy what was read
        target.unlink()
        return False
    return True


def place_files(jobs: Iterable[Job], total: int, link: bool, workers: int | None = None) -> Iterator[Placed]:
    """Place and hash every job's file on ``workers`` threads (default: all usable cores); yield the
    results in input order."""
    placed = ordered_map(partial(place_file, link=link), jobs, workers)
    yield from progress.bar(placed, total=total, unit="img", desc="package", mininterval=1.0, min_total=1000)
