"""``folder:<path>``: one sub-folder per class of image files, split by a seeded stratified draw.

Layout: ``<path>/<class name>/.../<image>``; a relative ``<path>`` is relative to the current
directory, ``~`` is the home folder. Class names are the folder names as written (spaces,
accents, quotes and all; the output folders use :func:`histosynth.fsutil.unique_safe_names`),
labelled in sorted order. Images may sit in sub-folders of a class folder (e.g. one per
patient). Decoding, mode conversion and resizing: :mod:`histosynth.data.image_decode`.

What is read, skipped or refused:

- Read: ``.png .jpg .jpeg .tif .tiff .bmp`` files (any case).
- Ignored quietly: hidden files and folders (names starting with ``.``: ``.DS_Store``,
  ``._x.png``, ``.git``).
- Ignored, named in an info line: other files (``notes.txt``) and files beside the class
  folders.
- Skipped, each named in a warning: symbolic links (to files or folders; never followed: a
  link may lead outside the folder and make the data set depend on files elsewhere, and a
  link inside it duplicates an image that could land in two splits), and image files that
  cannot be decoded (empty, truncated, corrupt, over the decompression-bomb limit).
- Refused with a DataError (nothing is written): a missing path or one that is not a folder,
  fewer than two classes, a class without a usable image (an empty folder, or all its files
  skipped), and a class too small to give every split with a non-zero fraction an image.

Origin: the manifest's ``origin`` is the image's path inside ``<path>`` (``<class>/.../<file>``),
never the absolute path of the source folder, which would travel into a published package.

Groups and split: each image gets a group (``data.group``: patient, slide or original image;
duplicates join one group with ``data.duplicates.action: group``), see
:mod:`histosynth.data.grouping`; the split is stratified by class and seeded and keeps every
group in one split, see :mod:`histosynth.data.group_split` (with one image per group: per
class, the images sorted by path are shuffled by a generator seeded from ``data.seed`` and the
label; the first ``round(test_fraction * n)`` go to test, the next ``round(val_fraction * n)``
to val, the rest to train).

Memory: every image is decoded once, at ``data.image_size``, into an image store on disk
(histosynth.image_store; TMPDIR needs ``N * size * size * 3`` bytes: 1.5 GB for 10,000 images of
224 px) and read from there when grouped, checked and written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from histosynth import progress
from histosynth.config.data import DataParams
from histosynth.data.group_split import split_by_groups
from histosynth.data.grouping import assign_groups
from histosynth.data.image_decode import IMAGE_SUFFIXES, UnreadableImageError, read_image_rgb
from histosynth.data.source_images import SourceImages, SplitImages
from histosynth.errors import DataError
from histosynth.fsutil import readable, safe_name
from histosynth.image_store import ImageStore, StoreWriter

log = logging.getLogger(__name__)


@dataclass
class _Scan:
    """Image files per class folder and what was passed over on the way."""

    classes: dict[str, list[Path]] = field(default_factory=dict)
    links: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _Image:
    row: int  # in the image store
    label: int
    relpath: str


def load_folder(params: DataParams) -> SourceImages:
    root = Path(params.source_arg).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"data.source = {params.source!r}: {root.resolve()} {what}; point it at a folder"
                        " with one sub-folder of images per class")
    scan = _scan(root)
    for link in scan.links:
        log.warning("skipped symbolic link %s (links are not followed)", link)
    if scan.others:
        log.info("ignored %d file(s) that are not images inside a class folder: %s", len(scan.others),
                 ", ".join(str(p) for p in scan.others))
    names = sorted(scan.classes)
    if len(names) < 2:
        found = f"only the class folder {names[0]!r}" if names else "no class folders"
        raise DataError(f"{root.resolve()}: found {found}; a folder source needs at least two"
                        " sub-folders, one per class, each holding that class's images")
    images, store = _decode(root, scan, names, params.image_size)
    relpaths = [image.relpath for image in images]
    groups = assign_groups(relpaths, [_image_id(path) for path in relpaths], lambda i: store.read([i])[0], params)
    split_of = split_by_groups([image.label for image in images], groups, names, params.val_fraction,
                               params.test_fraction, params.seed)
    return SourceImages(tuple(names), partial(_split_images, images, store, split_of, groups))


def _scan(root: Path) -> _Scan:
    scan = _Scan()
    for entry in _visible_entries(root, scan):
        if entry.is_dir(follow_symlinks=False):
            name = readable(entry.name)  # a name that is not UTF-8 keeps its bytes as \xNN
            if name in scan.classes:
                raise DataError(f"{root.resolve()}: two class folders are both named {name!r} once their "
                                "non-UTF-8 bytes are shown as \\xNN; rename one of them")
            if name != entry.name:
                log.warning("class folder %s: its name is not valid UTF-8; the class is called %r", name, name)
            scan.classes[name] = _image_files(Path(entry.path), scan)
        else:
            scan.others.append(Path(entry.path))
    return scan


def _visible_entries(folder: Path, scan: _Scan) -> list[os.DirEntry]:
    """Entries of ``folder`` by name, hidden ones dropped and symbolic links set aside."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"{folder}: cannot list this folder ({err.strerror}); check its permissions") from None
    visible = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            scan.links.append(Path(entry.path))
        else:
            visible.append(entry)
    return visible


def _image_files(folder: Path, scan: _Scan) -> list[Path]:
    files = []
    for entry in _visible_entries(folder, scan):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            files.extend(_image_files(path, scan))
        elif entry.is_file(follow_symlinks=False) and path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(path)
        else:
            scan.others.append(path)
    return files


def _decode(root: Path, scan: _Scan, names: list[str], size: int) -> tuple[list[_Image], ImageStore]:
    total = sum(len(scan.classes[name]) for name in names)
    images: list[_Image] = []
    skipped = 0
    writer = StoreWriter((size, size, 3), expected=total)
    with progress.bar(total=total, desc="decoding images", unit="img", min_total=200) as bar:
        for label, name in enumerate(names):
            usable = 0
            for path in scan.classes[name]:
                bar.update()
                try:
                    pixels = read_image_rgb(path, size)
                except UnreadableImageError as err:
                    log.warning("skipped %s", err)
                    skipped += 1
                    continue
                images.append(_Image(writer.count, label, path.relative_to(root).as_posix()))
                writer.add(pixels)
                usable += 1
            if not usable:
                folder = root.resolve() / name
                detail = (f"all {len(scan.classes[name])} image files were unreadable (see the warnings above)"
                          if scan.classes[name] else "has no image files (PNG, JPEG, TIFF or BMP)")
                raise DataError(f"class folder {folder}: {detail}; add images or remove the folder")
    if skipped:
        log.warning("skipped %d of %d image files that could not be read (named above)", skipped, total)
    return images, writer.finish()


def _split_images(images: list[_Image], store: ImageStore, split_of: list[str], groups: list[str],
                  split: str) -> SplitImages:
    chosen = [image for image, s in zip(images, split_of) if s == split]
    return SplitImages(
        labels=np.array([image.label for image in chosen], dtype=np.int64),
        ids=[_image_id(image.relpath) for image in chosen],
        # inside the source folder only: where that folder lies on this machine is nobody's business
        origins=[readable(image.relpath) for image in chosen],
        image=lambda i: store.read([chosen[i].row])[0],
        groups=[group for group, s in zip(groups, split_of) if s == split],
    )


def _image_id(relpath: str) -> str:
    """Readable (the file's stem) and unique (a hash of its path inside the source folder, as bytes:
    a name that is not UTF-8 hashes too)."""
    digest = hashlib.md5(os.fsencode(relpath), usedforsecurity=False).hexdigest()[:12]
    return f"{safe_name(Path(relpath).stem)[:40]}_{digest}"
