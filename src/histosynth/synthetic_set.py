"""Which synthetic set a QA verdict judged: one MD5 that changes whenever the set does.

``qa`` writes it into ``reports/qa/metrics.json`` (key :data:`SYNTHETIC_SET_KEY`) and ``package``
refuses a verdict whose MD5 is not that of the synthetic folder it packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from histosynth.errors import DataError
from histosynth.images import md5_bytes
from histosynth.manifest import MANIFEST_NAME
from histosynth.plain_files import md5_plain_file

SYNTHETIC_SET_KEY = "synthetic_set_md5"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def synthetic_set_md5(folder: Path | str) -> str:
    """MD5 of ``folder/manifest.parquet`` (which holds every image's MD5) when there is one; for plain
    class folders (a set made elsewhere), MD5 of the sorted ``<md5>  <class folder>/<file>`` lines of
    their image files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: synthetic image folder not found; run the generate stage (`dvc repro generate`)")
    if (folder / MANIFEST_NAME).is_file():
        return md5_plain_file(folder / MANIFEST_NAME, follow_symlinks=True)
    lines = sorted(md5_plain_file(path, follow_symlinks=True).encode() + b"  " + os.fsencode(path.relative_to(folder))
                   for sub in folder.iterdir() if sub.is_dir()
                   for path in sub.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    return md5_bytes(b"\n".join(lines))
