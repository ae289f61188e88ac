"""``medmnist:<flag>``: a 2D MedMNIST v2 data set read by the medmnist package, official splits.

- ``data.image_size`` must be one of MedMNIST's own sizes (28, 64, 128, 224); images are used
  at that size as published, never resampled. Class names are MedMNIST's label texts.
- The file is MedMNIST's own: ``<data.root>/<flag>.npz`` for 28 px, ``<flag>_<size>.npz``
  otherwise. A file already there is used as is, without network. A missing file is an
  error naming the file, the folder and the official URL, unless ``data.download: true``,
  which lets medmnist download it (and check its MD5).
- Grayscale sets (e.g. OrganAMNIST) become RGB with three equal channels.
- Multi-label (ChestMNIST) and 3D sets are refused: the pipeline needs one class per 2D image.
- Memory: a split's images are never in memory at once. Labels are read first; the images that
  ingest keeps (``data.max_per_class``) then stream out of the ``.npz`` a block at a time
  (histosynth.data.npz_blocks) into an image store on disk (histosynth.image_store: TMPDIR needs
  the kept images' size, e.g. 13.5 GB for PathMNIST's whole train split at 224 px).
- Download: medmnist's own download, which checks the file's MD5 against MedMNIST's.
"""

from __future__ import annotations

import logging
import zipfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.config.data import DataParams
from histosynth.data import npz_blocks
from histosynth.data.source_images import SourceImages, SplitImages
from histosynth.errors import ConfigError, DataError
from histosynth.image_store import ImageStore, write_store

log = logging.getLogger(__name__)

SIZES = (28, 64, 128, 224)


def size_suffix(size: int) -> str:
    """MedMNIST's suffix for a size in file names and INFO keys: bloodmnist.npz, bloodmnist_64.npz, url_64."""
    return "" if size == 28 else f"_{size}"


def load_medmnist(params: DataParams) -> SourceImages:
    import medmnist  # imports torch: only when this source is used

    flag, size = params.source_arg.strip().lower(), params.image_size
    info = _supported_info(medmnist, flag)
    if size not in SIZES:
        raise ConfigError(f"data.image_size = {size}: MedMNIST publishes {flag} at"
                          f" {', '.join(map(str, SIZES))} pixels only; pick one of those")
    root, suffix = Path(params.root), size_suffix(size)
    path = root / f"{flag}{suffix}.npz"
    url, md5 = info[f"url{suffix}"], info[f"MD5{suffix}"]
    if not path.is_file():
        if not params.download:
            raise DataError(f"{path} is missing: put MedMNIST's {path.name} into the folder {root.resolve()}"
                            f" (official file: {url}, MD5 {md5}), or set data.download: true to let"
                            " medmnist download it")
        root.mkdir(parents=True, exist_ok=True)
    dataset_class = getattr(medmnist, info["python_class"])
    class_names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    return SourceImages(class_names, partial(_read_split, dataset_class, info, params, flag, path, url, class_names))


def _supported_info(medmnist: Any, flag: str) -> dict[str, Any]:
    from medmnist.dataset import MedMNIST2D

    def unusable_because(name: str) -> str | None:
        info = medmnist.INFO[name]
        if not issubclass(getattr(medmnist, info["python_class"]), MedMNIST2D):
            return "a 3D set"
        return "multi-label" if info["task"].startswith("multi-label") else None

    usable = ", ".join(name for name in medmnist.INFO if unusable_because(name) is None)
    if flag not in medmnist.INFO:
        raise ConfigError(f"data.source = 'medmnist:{flag}': unknown MedMNIST flag; the usable (2D,"
                          f" single-label) ones are: {usable}")
    reason = unusable_because(flag)
    if reason:
        raise ConfigError(f"data.source = 'medmnist:{flag}': {flag} is {reason}, but the pipeline needs one"
                          f" class per 2D image; usable: {usable}")
    return medmnist.INFO[flag]


def _read_split(dataset_class: type, info: dict[str, Any], params: DataParams, flag: str, path: Path, url: str,
                class_names: tuple[str, ...], split: str) -> SplitImages:
    if params.download and not path.is_file():
        log.info("downloading %s into %s", url, path.parent)
        _download(dataset_class, info, path, params.image_size, url)
    where = f"{path} ({split})"
    try:
        labels = npz_blocks.read_array(path, f"{split}_labels")
        header = npz_blocks.read_header(path, f"{split}_images")
    except _UNREADABLE as err:
        raise DataError(f"{path}: not a readable MedMNIST .npz file ({err})") from None
    labels = _checked_arrays(header, labels, params.image_size, len(class_names), where)
    images = _StoredSplit(path, f"{split}_images", header, where)
    n = len(labels)
    return SplitImages(
        labels=labels,
        ids=[f"{flag}_{split}_{i:06d}" for i in range(n)],
        origins=[f"{path.name}:{split}_images[{i}]" for i in range(n)],
        image=images.image,
        select=images.select,
    )


_UNREADABLE = (KeyError, OSError, ValueError, EOFError, zipfile.BadZipFile)


def _download(dataset_class: type, info: dict[str, Any], path: Path, size: int, url: str) -> None:
    """medmnist's download (with its MD5 check) of ``path``, without reading the file into memory."""
    downloader = dataset_class.__new__(dataset_class)  # what MedMNIST.download reads, and nothing else
    downloader.info, downloader.root, downloader.size_flag = info, str(path.parent), size_suffix(size)
    try:
        downloader.download()
    except RuntimeError as err:  # medmnist's (multi-line) download failure
        raise DataError(f"downloading {url} into {path.parent.resolve()} failed"
                        f" ({str(err).strip().splitlines()[0]}); download it by hand into that folder") from None


class _StoredSplit:
    """The images of one split, streamed out of the .npz into an image store when ingest says which."""

    def __init__(self, path: Path, member: str, header: npz_blocks.ArrayHeader, where: str) -> None:
        self.path, self.member, self.header, self.where = path, member, header, where
        self.rows: np.ndarray | None = None
        self.store: ImageStore | None = None

    def select(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.int64)
        size = self.header.shape[1]
        grey = len(self.header.shape) == 3
        blocks = (np.repeat(block[..., None], 3, axis=3) if grey else block
                  for block in npz_blocks.read_rows(self.path, self.member, rows))
        try:
            self.store = write_store(blocks, (size, size, 3), expected=len(rows))
        except _UNREADABLE as err:
            raise DataError(f"{self.where}: not a readable MedMNIST .npz file ({err})") from None
        self.rows = rows

    def image(self, i: int) -> np.ndarray:
        if self.store is None:
            self.select(np.arange(self.header.shape[0]))
        position = int(np.searchsorted(self.rows, i))
        if position == len(self.rows) or self.rows[position] != i:
            raise IndexError(f"image {i} of {self.where} was not selected")
        return self.store.read([position])[0]


def _checked_arrays(images: npz_blocks.ArrayHeader, labels: np.ndarray, size: int, n_classes: int,
                    where: str) -> np.ndarray:
    """The split's labels (N,) int64 once its images (their header: (N, S, S[, 3]) uint8) and labels
    are what MedMNIST publishes, or a DataError saying what is off."""
    shape = images.shape
    shape_ok = len(shape) == 3 or (len(shape) == 4 and shape[3] == 3)
    if images.dtype != np.uint8 or not shape_ok or shape[1:3] != (size, size):
        raise DataError(f"{where}: expected uint8 images of shape (N, {size}, {size}[, 3]),"
                        f" found {images.dtype} {shape}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (shape[0],):
        raise DataError(f"{where}: expected one label per image, found labels of shape {labels.shape}"
                        f" for {shape[0]} images")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{where}: labels must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}")
    return labels
