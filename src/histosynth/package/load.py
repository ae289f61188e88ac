"""Reading a package (``data/package`` or a copy fetched with ``dvc get``) for training and analysis.

    import histosynth
    package = histosynth.load_package("data/package")
    loader = torch.utils.data.DataLoader(package.torch_dataset(split="train"), batch_size=64, shuffle=True)

A package from elsewhere is read defensively: its metadata, images folder, class folders and
images must be plain files and folders (a symbolic link could lead anywhere, a FIFO or device
would hang the reader); every image must be a PNG of the size its metadata row gives, under
PIL's decompression-bomb limit; and ``image_set`` refuses to allocate more than half the
machine's memory. Each problem is a DataError naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import os

import numpy as np
import pandas as pd

from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.manifest import SPLITS, class_names_of
from histosynth.package.pixels import read_package_image
from histosynth.package.schema import IMAGES_DIR, METADATA_PARQUET, SOURCES, read_metadata_parquet
from histosynth.parallel import ordered_map
from histosynth.plain_files import entry_kind

# image_set() refuses an array larger than this share of the machine's memory.
MEMORY_SHARE = 0.5

if TYPE_CHECKING:
    from histosynth.package.torch_data import PackageDataset


@dataclass(frozen=True)
class Package:
    root: Path
    metadata: pd.DataFrame

    @property
    def class_names(self) -> list[str]:
        """Original class names, indexed by label (over the whole package, whatever is selected)."""
        return class_names_of(self.metadata)

    def select(self, split: str | None = None, source: str | None = None) -> pd.DataFrame:
        """Metadata rows of one split and/or source (None = all)."""
        rows = self.metadata
        if split is not None:
            if split not in SPLITS:
                raise DataError(f"unknown split {split!r}; the package's splits are {', '.join(SPLITS)}")
            rows = rows[rows["split"] == split]
        if source is not None:
            if source not in SOURCES:
                raise DataError(f"unknown source {source!r}; allowed: {', '.join(SOURCES)}")
            rows = rows[rows["source"] == source]
        return rows

    def paths(self, rows: pd.DataFrame | None = None) -> list[Path]:
        rows = self.metadata if rows is None else rows
        return [self.root / p for p in rows["file_path"]]

    def _images_of(self, rows: pd.DataFrame) -> Iterator[np.ndarray]:
        sizes = zip(rows["width"].tolist(), rows["height"].tolist())
        return ordered_map(lambda job: read_package_image(job[0], *job[1]), zip(self.paths(rows), sizes))

    def image_set(self, split: str | None = None, source: str | None = None) -> ImageSet:
        """The selected images in memory, decoded on all cores, in metadata order."""
        rows = self.select(split, source)
        sizes = rows[["height", "width"]].drop_duplicates()
        if len(sizes) > 1:
            raise DataError(f"{self.root}: the selected images have {len(sizes)} different sizes; "
                            "use Package.images() or Package.torch_dataset() with a resizing transform")
        height, width = (int(v) for v in sizes.iloc[0]) if len(sizes) else (0, 0)
        needed = len(rows) * height * width * 3
        if needed > MEMORY_SHARE * _memory_bytes():
            raise DataError(f"{self.root}: the selected {len(rows)} images of {width}x{height} px need "
                            f"{needed / 2**30:.1f} GiB, more than half this machine's memory; stream them with "
                            "Package.images() or Package.torch_dataset()")
        images = np.empty((len(rows), height, width, 3), np.uint8)
        for i, image in enumerate(self._images_of(rows)):
            images[i] = image
        return ImageSet(images, rows["label"].to_numpy(np.int64), tuple(self.class_names))

    def images(self, split: str | None = None,
               source: str | None = None) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
        """``(metadata row as a dict, (H, W, 3) uint8 image)`` for the selected images, streaming."""
        rows = self.select(split, source)
        return zip(rows.to_dict("records"), self._images_of(rows))

    def torch_dataset(self, split: str | None = None, source: str | None = None,
                      transform: Callable[[Any], Any] | None = None) -> PackageDataset:
        """A map-style torch Dataset of ``(image, label)``; images are read when indexed.

        ``image`` is a float32 (3, H, W) tensor in [0, 1] (torchvision's ``ToTensor`` convention),
        passed through ``transform`` when given; ``label`` is an int.
        """
        from histosynth.package.torch_data import PackageDataset

        rows = self.select(split, source)
        sizes = list(zip(rows["width"].tolist(), rows["height"].tolist()))
        return PackageDataset(self.paths(rows), rows["label"].tolist(), self.class_names, transform, sizes)


def _memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_folders(root: Path, metadata: pd.DataFrame) -> None:
    """The images folder and every class folder must be real folders, not links to elsewhere."""
    for rel in (IMAGES_DIR, *(f"{IMAGES_DIR}/{folder}" for folder in sorted(metadata["class_folder"].unique()))):
        try:
            kind = entry_kind(root / rel)
        except FileNotFoundError:
            continue  # its images are missing: reading them says so
        except OSError as err:
            raise DataError(f"{root / rel}: cannot be read ({err.strerror}); check the package with "
                            "`histosynth verify`") from None
        if kind != "a folder":
            raise DataError(f"{root / rel}: {kind or 'a file'}, not a folder; a package holds plain files and "
                            "folders only, so it is not read (check it with `histosynth verify`)")


def load_package(path: Path | str) -> Package:
    """Open the package folder ``path``: its metadata is read and validated, images are read on demand."""
    root = Path(path)
    metadata_file = root / METADATA_PARQUET
    if not metadata_file.exists() and not metadata_file.is_symlink():
        what = "does not exist" if not root.exists() else f"is not a histosynth package (no {METADATA_PARQUET})"
        raise DataError(f"{root}: {what}; build one with `dvc repro package` or fetch one with "
                        "`dvc get <repo> data/package`")
    metadata = read_metadata_parquet(metadata_file)
    _check_folders(root, metadata)
    return Package(root, metadata)
