"""``MD5SUMS`` files that ``md5sum -c`` checks: one per class folder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from histosynth.fsutil import atomic_write_text

MD5SUMS_NAME = "MD5SUMS"


def format_md5sums(entries: Iterable[tuple[str, str]]) -> str:
    """``<md5>  <file name>`` lines (text mode, as md5sum writes them), sorted by file name."""
    lines = []
    for name, md5 in sorted(entries):
        if "\\" in name or "\n" in name:  # md5sum would need its escaped form; our names never do
            raise ValueError(f"file name {name!r} needs escaping in an MD5SUMS file")
        lines.append(f"{md5}  {name}\n")
    return "".join(lines)


def write_md5sums(folder: Path, entries: Iterable[tuple[str, str]]) -> Path:
    """Write ``folder/MD5SUMS`` for ``(file name, md5)`` pairs of files in ``folder``."""
    path = Path(folder) / MD5SUMS_NAME
    atomic_write_text(path, format_md5sums(entries))
    return path
