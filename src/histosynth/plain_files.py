"""Reading files that may come from elsewhere as plain files only: a FIFO or device is refused without
blocking (reading it could hang), a symbolic link unless asked for, each with one error naming it."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from histosynth.errors import DataError


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
