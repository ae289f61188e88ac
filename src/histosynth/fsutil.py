"""Filesystem helpers: atomic outputs and filesystem-safe names."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def atomic_output_dir(final: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``final`` only if the block succeeds.

    An interrupted or failing stage therefore never leaves a half-written output behind for
    DVC to cache; the previous output (if any) stays untouched until the swap.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final)


def replace_dir(complete: Path, final: Path) -> None:
    """Put the finished folder ``complete`` in place of ``final`` (whatever ``final`` was)."""
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    os.replace(complete, final)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


_UNSAFE = re.compile(r"[^a-z0-9]+")


def safe_name(name: str) -> str:
    """A folder name made from a class name: ASCII lower-case letters, digits and '_'.

    Accents are folded (``Épithélium`` -> ``epithelium``); anything else, including path
    separators, dots and quotes, becomes '_'. The original name is kept in the metadata.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", folded.lower()).strip("_")
    return cleaned or "class"


def unique_safe_names(names: Sequence[str]) -> list[str]:
    """:func:`safe_name` of each name, with ``_2``, ``_3``... added where two would collide."""
    used: set[str] = set()
    out = []
    for name in names:
        base = safe_name(name)
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        out.append(candidate)
    return out
