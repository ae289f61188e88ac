"""Filesystem helpers: atomic outputs and filesystem-safe names (plain-file reading: histosynth.plain_files)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

from histosynth import paths
from histosynth.errors import DataError

log = logging.getLogger(__name__)


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where /proc does
    not say (no such process, or a system without /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return fields[19].decode() if len(fields) > 19 else None  # field 22 of stat(5), counted after the name


_OWNER: dict[int, str] = {}


def _owner_tag() -> str:
    """``<pid>-<start>``: names this process's temporaries, so that a later process given the same id
    (pid reuse) is not taken for their owner."""
    pid = os.getpid()
    if pid not in _OWNER:
        _OWNER[pid] = _process_start(pid) or "0"
    return f"{pid}-{_OWNER[pid]}"


def temporary_name(final: Path, kind: str = "tmp") -> str:
    """``.<name>.<kind>-<pid>-<start>``: what this process writes ``final`` as until it is complete."""
    return f".{final.name}.{kind}-{_owner_tag()}"


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


def _looks_like_histosynth(pid: int) -> bool:
    """For the folders of older versions, named by the process id alone: is that process histosynth?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read()
    except OSError:
        return not os.path.isdir("/proc") and _process_alive(pid)
    return b"histosynth" in command or b"stages/" in command


def _owner_alive(pid: int, start: str | None) -> bool:
    """Whether the histosynth process that made a temporary still runs: the same id and, where the
    name records it, the same start time (another process may have been given the id since)."""
    if start is None:
        return _looks_like_histosynth(pid)
    if start == "0":  # made where /proc was not there to ask
        return _process_alive(pid)
    now = _process_start(pid)
    if now is None:
        return not os.path.isdir("/proc") and _process_alive(pid)
    return now == start


def remove_stale_temporaries(final: Path | str) -> list[Path]:
    """Remove the temporary folders of ``final`` that earlier runs killed mid-way left behind.

    Only names :func:`atomic_output_dir` makes for this output count (``.<name>.tmp-<pid>-<start>``,
    ``.<name>.old-<pid>-<start>`` and older versions' ``.<name>.tmp-<pid>``), and only when the
    process that made them no longer runs (the same id and start time; for the older names: a
    process with that id whose command line names histosynth): a run in progress keeps its folder.
    (A process in another PID namespace, e.g. another container on the same files, is not seen: do
    not run two such stages on one output at once.)
    """
    final = Path(final)
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(?:tmp|old)-([0-9]{{1,10}})(?:-([0-9]{{1,20}}))?$")
    removed = []
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return removed
    own = _owner_tag()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or entry.name.endswith(f"-{own}"):
            continue
        pid, start = int(match.group(1)), match.group(2)
        if _owner_alive(pid, start):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary folder(s) that interrupted runs left: %s", len(removed),
                 ", ".join(readable(str(p)) for p in removed))
    return removed


def remove_project_temporaries(root: Path | str = ".") -> None:
    """:func:`remove_stale_temporaries` beside every output the pipeline replaces whole, in the DVC
    project at ``root`` (nothing outside one): a stage killed outright whose next run DVC skipped
    (its run cache had the result) would otherwise leave its temporary folder there for good."""
    root = Path(root)
    if (root / "dvc.yaml").is_file():
        for output in paths.REPLACED_OUTPUTS:
            remove_stale_temporaries(root / output)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (flock on the folder itself: no lock file is left behind), so
    that runs writing outputs into one folder swap them in one at a time."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        yield
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:  # a file system without locks (some network ones): swap unlocked
            log.debug("no lock on %s (%s)", folder, err.strerror)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def _make_folder(folder: Path, label: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataError(f"{folder}: a file, not a folder; the {label} cannot be written there") from None


@contextlib.contextmanager
def atomic_output_dir(final: Path | str, label: str = "output folder") -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``final`` only if the block succeeds.

    ``final`` must be a folder histosynth may replace (:mod:`histosynth.output_policy`: not the
    current or home folder, not a link, a device or a folder of someone else's files); that is
    checked before the block and again, under a lock on the parent folder, at the swap. The new
    folder carries the marker :data:`~histosynth.output_policy.MARKER`.

    An interrupted or failing stage therefore never leaves a half-written output behind for
    DVC to cache; the previous output (if any) stays untouched until the swap. On an error,
    Ctrl-C or SIGTERM the thread pools this thread started (histosynth.parallel) are stopped
    before the temporary folder is removed. A run killed outright (kill -9) cannot clean up:
    the next run removes its folder first.
    """
    from histosynth import output_policy, parallel

    final = Path(final)
    output_policy.check_replaceable_folder(final, label)
    _make_folder(final.parent, label)
    remove_stale_temporaries(final)
    tmp = final.parent / temporary_name(final)
    if tmp.is_dir() and not tmp.is_symlink():  # this process's own, from a block that ended without clean-up
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        (tmp / output_policy.MARKER).write_text(output_policy.MARKER_TEXT, encoding="utf-8")
        yield tmp
        _swap_in(tmp, final, label)
    except BaseException as err:
        parallel.stop_pools()
        shutil.rmtree(tmp, ignore_errors=True)
        _name_the_output(err, final, tmp)
        raise


def _name_the_output(err: BaseException, output: Path, temporary: Path | None = None) -> None:
    """Name the output a failed write was for: a write on a full disk names no file, and the
    temporary's name means nothing to the user."""
    if not isinstance(err, OSError) or err.errno is None:
        return
    named = None if err.filename is None else str(err.filename)
    if named is None or (temporary is not None and (named == str(temporary) or named.startswith(f"{temporary}/"))):
        err.filename = str(output)


def _swap_in(complete: Path, final: Path, label: str) -> None:
    """Put the finished folder ``complete`` in place of ``final``, which must still be ours to replace."""
    from histosynth import output_policy

    old = final.parent / temporary_name(final, "old")
    with _locked(final.parent):
        output_policy.check_replaceable_folder(final, label)
        had_one = os.path.lexists(final)
        if had_one:
            os.rename(final, old)
        try:
            os.rename(complete, final)
        except BaseException:
            if had_one:
                os.rename(old, final)
            raise
    if had_one:
        shutil.rmtree(old, ignore_errors=True)


def replace_dir(complete: Path, final: Path, label: str = "output folder") -> None:
    """Put the finished folder ``complete`` (made by this process) in place of ``final``, which must
    be a folder histosynth may replace (checked under a lock; otherwise OutputRefused)."""
    _swap_in(Path(complete), Path(final), label)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``path`` through a temporary file beside it, removed again when the write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temporary_name(path))
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _name_the_output(err, path, tmp)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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
