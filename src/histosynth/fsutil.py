"""Filesystem helpers: atomic outputs, plain-file reading and filesystem-safe names."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from histosynth.errors import DataError

log = logging.getLogger(__name__)


def _temporary_name(final: Path, pid: int) -> str:
    return f".{final.name}.tmp-{pid}"


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine, in this PID namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    except (OverflowError, ValueError):  # not a process id at all
        return False
    return True


def remove_stale_temporaries(final: Path | str) -> list[Path]:
    """Remove the temporary folders of ``final`` that earlier runs killed mid-way left behind.

    Only names :func:`atomic_output_dir` makes for this output (``.<name>.tmp-<pid>``) count, and
    only when no process with that id runs: a run in progress keeps its folder. (A process in
    another PID namespace, e.g. another container on the same files, is not seen: do not run two
    such stages on one output at once.)
    """
    final = Path(final)
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.tmp-([0-9]{{1,10}})$")
    removed = []
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or _process_alive(int(match.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary folder(s) that interrupted runs left: %s", len(removed),
                 ", ".join(str(p) for p in removed))
    return removed


@contextlib.contextmanager
def atomic_output_dir(final: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``final`` only if the block succeeds.

    An interrupted or failing stage therefore never leaves a half-written output behind for
    DVC to cache; the previous output (if any) stays untouched until the swap. A run killed
    mid-way (kill -9) cannot clean up: the next run removes its folder first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = final.parent / _temporary_name(final, os.getpid())
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


class NotAPlainFile(DataError):
    """A path that should be a plain file is a link, a folder, a device, a FIFO or a socket."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def entry_kind(path: Path | str) -> str | None:
    """None for a plain file; otherwise what ``path`` is ("a symbolic link", "a FIFO", ...)."""
    mode = os.lstat(path).st_mode
    return None if stat.S_ISREG(mode) else _kind(mode)


def is_plain_file(path: Path | str) -> bool:
    """A regular file, not reached through a symbolic link in its last component."""
    try:
        return entry_kind(path) is None
    except OSError:
        return False


def open_plain_file(path: Path | str, follow_symlinks: bool = False) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file, else NotAPlainFile: a FIFO or
    device is refused without blocking (reading it could hang), and a symbolic link is refused
    too unless ``follow_symlinks`` (then it must lead to a regular file)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise NotAPlainFile(f"{path}: a symbolic link, not a plain file (refused)") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotAPlainFile(f"{path}: {_kind(mode)}, not a plain file (refused)")
    return os.fdopen(fd, "rb")


def md5_plain_file(path: Path | str, follow_symlinks: bool = False) -> str:
    """MD5 of a plain file (:func:`open_plain_file`)."""
    with open_plain_file(path, follow_symlinks) as file:
        return hashlib.file_digest(file, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def read_plain_bytes(path: Path | str) -> bytes:
    with open_plain_file(path) as file:
        return file.read()


def readable(text: str) -> str:
    """``text`` as valid UTF-8 text: the undecodable bytes of a file name (which Python keeps as
    surrogate escapes) are shown as ``\\xNN``, so that the name can be printed, logged, stored in
    Parquet and compared. Valid names are returned unchanged."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name gave: show its code point
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
