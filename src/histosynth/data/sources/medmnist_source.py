"""``medmnist:<flag>``: a 2D MedMNIST v2 data set read by the medmnist package, official splits.

- ``data.image_size`` must be one of MedMNIST's own sizes (28, 64, 128, 224); images are used
  at that size as published, never resampled. Class names are MedMNIST's label texts.
- The file is MedMNIST's own: ``<data.root>/<flag>.npz`` for 28 px, ``<flag>_<size>.npz``
  otherwise. A file already there is used as is, without network. A missing file is an
  error naming the file, the folder and the official URL, unless ``data.download: true``,
  which lets medmnist download it (and check its MD5).
- Grayscale sets (e.g. OrganAMNIST) become RGB with three equal channels.
- Multi-label (ChestMNIST) and 3D sets are refused: the pipeline needs one class per 2D image.
- Memory: the medmnist class reads a whole split into memory; splits are read one at a time
  and each image is taken from that array without copies, so the peak is the largest split
  (PathMNIST at 224 px: about 13.5 GB for train; cap it with a smaller size where that hurts).
"""

from __future__ import annotations

import logging
import zipfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.config.data import DataParams
from histosynth.data.source_images import SourceImages, SplitImages
from histosynth.errors import ConfigError, DataError

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
    return SourceImages(class_names, partial(_read_split, dataset_class, params, flag, path, url, class_names))


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


def _read_split(dataset_class: type, params: DataParams, flag: str, path: Path, url: str,
                class_names: tuple[str, ...], split: str) -> SplitImages:
    download = params.download and not path.is_file()
    if download:
        log.info("downloading %s into %s", url, path.parent)
    try:
        dataset = dataset_class(split=split, size=params.image_size, root=str(path.parent), download=download)
    except RuntimeError as err:  # medmnist's (multi-line) download failure
        raise DataError(f"downloading {url} into {path.parent.resolve()} failed"
                        f" ({str(err).strip().splitlines()[0]}); download it by hand into that folder") from None
    except (KeyError, OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable MedMNIST .npz file ({err})") from None
    images, labels = _checked_arrays(dataset.imgs, dataset.labels, params.image_size, len(class_names),
                                     f"{path} ({split})")
    if images.ndim == 3:
        def image(i: int) -> np.ndarray:
            return np.repeat(images[i][..., None], 3, axis=2)
    else:
        def image(i: int) -> np.ndarray:
            return images[i]
    n = len(labels)
    return SplitImages(
        labels=labels,
        ids=[f"{flag}_{split}_{i:06d}" for i in range(n)],
        origins=[f"{path.name}:{split}_images[{i}]" for i in range(n)],
        image=image,
    )


def _checked_arrays(images: np.ndarray, labels: np.ndarray, size: int, n_classes: int,
                    where: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's images (N, S, S[, 3]) uint8 and labels (N,) int64, or a DataError saying what is off."""
    shape_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)
    if images.dtype != np.uint8 or not shape_ok or images.shape[1:3] != (size, size):
        raise DataError(f"{where}: expected uint8 images of shape (N, {size}, {size}[, 3]),"
                        f" found {images.dtype} {images.shape}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (len(images),):
        raise DataError(f"{where}: expected one label per image, found labels of shape {labels.shape}"
                        f" for {len(images)} images")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{where}: labels must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}")
    return images, labels
