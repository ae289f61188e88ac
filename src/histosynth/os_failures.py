"""Ordinary failures of the machine rather than of histosynth: a full disk, a read-only or
unwritable folder, a name too long, the reader of standard output gone (``| head``), SIGTERM.

:func:`histosynth.entry.run_guarded` turns each into one ``error:`` line (or, for a closed pipe,
a quiet stop as coreutils make) and its exit status, after the outputs' temporary folders are
removed (:func:`histosynth.fsutil.atomic_output_dir`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

# errno -> what to do about it. Anything else stays a bug report (exit 70).
_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write to another disk, then rerun",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere, then rerun",
    errno.EFBIG: "the file grew past the size this system allows (ulimit -f, or the file system's limit): raise "
                 "the limit or write elsewhere, then rerun",
    errno.EROFS: "the file system is read-only: write to a writable folder instead",
    errno.EACCES: "permission denied: check the folder's permissions, or write elsewhere",
    errno.EPERM: "operation not permitted: check the folder's permissions, or write elsewhere",
    errno.ENAMETOOLONG: "the name is too long for the file system: choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and rerun",
    errno.EIO: "an input/output error of the disk: check the disk, then rerun",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: raised like Ctrl-C's KeyboardInterrupt, so that the same clean-up runs."""


def describe(err: OSError) -> str | None:
    """One line for an OSError the machine caused (what, where, what to do), or None for any other."""
    hint = _HINTS.get(err.errno) if isinstance(err.errno, int) else None
    if hint is None:
        return None
    what = err.strerror or os.strerror(err.errno)
    where = f"{err.filename}: {what}" if err.filename is not None else f"{what} while writing"
    return f"{where}; {hint} (nothing half-written was kept)"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (outside it: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit does not fail again on a closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
