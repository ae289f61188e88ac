"""Where histosynth may write: one policy for the outputs of every command and DVC stage.

An output folder is replaced whole (:func:`histosynth.fsutil.atomic_output_dir`), so before
anything is read or written every output is checked, and refused with :class:`OutputRefused`
(a DataError: one ``error:`` line, exit status 4) when it is

- ``/``, the current folder or a folder above it, the home folder or a folder above it;
- a symbolic link (never followed: give the real path), a device, a FIFO or a socket, or a
  plain file where a folder is written (and a folder where a file is written);
- one of the command's inputs (for ``ingest``: the ``folder:`` source, ``data.root``, the group
  CSV), a folder inside one or a folder holding one; or another output of the same command;
- an existing folder that histosynth did not make. Ours are: an empty folder; a folder holding
  the marker file :data:`MARKER` (written into every output folder histosynth makes); a folder
  that the project's ``dvc.yaml`` declares as a stage output, or whose entries all are (git and
  ``dvc checkout`` restore them without the marker, which ``.dvcignore`` keeps out of DVC's
  hashes); a folder an earlier version wrote, recognised by its ``manifest.parquet`` or package
  ``metadata.parquet`` with our columns.
- an existing file that histosynth did not write (file outputs: the report, an SQL dump); a link
  into the project's DVC cache (``cache.type: symlink``) is replaced as DVC replaces it.

The checks run again, under a lock, just before the swap; nothing is removed that failed them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from histosynth.errors import DataError
from histosynth.plain_files import open_plain_file

MARKER = ".histosynth-output"
MARKER_TEXT = ("This folder was written by histosynth and is replaced whole when the command that wrote it runs "
               "again; do not keep your own files in it.\n")
DVC_FILE = "dvc.yaml"
# Columns that only our own Parquet files carry together (histosynth.manifest, histosynth.package.schema).
_OUR_PARQUET = {
    "manifest.parquet": {"id", "path", "class_name", "label", "split", "source", "md5", "origin"},
    "metadata.parquet": {"id", "file_path", "class_name", "class_folder", "label", "source", "split", "md5"},
}
_FIX = "choose a new or empty folder"

PathLike = Path | str


class OutputRefused(DataError):
    """An output path that histosynth will not write to (see the module docstring)."""


def current_folder() -> Path:
    """The current folder, or a DataError when it no longer exists (deleted while a shell was in it)."""
    try:
        return Path(os.getcwd())
    except FileNotFoundError:
        raise DataError("the current folder no longer exists (it was deleted or moved away); cd into an "
                        "existing folder and rerun") from None


def _absolute(path: PathLike) -> Path:
    path = Path(path)
    return path if path.is_absolute() else current_folder() / path


def _real(path: PathLike) -> Path:
    """The absolute path with every symbolic link on the way resolved (the last part need not exist)."""
    return Path(os.path.realpath(_absolute(path)))


def _lstat(path: Path, label: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        why = {errno.ENAMETOOLONG: "the name is too long for the file system",
               errno.ENOTDIR: "a part of the path is a file, not a folder",
               errno.EACCES: "permission denied on a folder of the path",
               errno.ELOOP: "too many symbolic links on the way"}.get(err.errno, err.strerror)
        raise OutputRefused(f"{path}: cannot be the {label} ({why}); choose another path") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file or folder"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _refuse_protected(path: Path, real: Path, label: str) -> None:
    home = Path(os.path.expanduser("~"))
    protected = [(current_folder().resolve(), "the current folder")]
    protected += [(home.resolve(), "your home folder")] if home.is_absolute() else []
    for where, what in protected:
        if _inside(where, real):
            this = "is" if where == real else "holds"
            raise OutputRefused(f"{path}: {this} {what}, which the {label} would replace; {_FIX} (e.g. a new "
                                "sub-folder)")


def _declared_dvc_outputs() -> set[Path]:
    """The outputs (outs, metrics, plots) of every stage in the current folder's dvc.yaml, resolved."""
    try:
        with open_plain_file(DVC_FILE) as file:  # not a FIFO that would hang the read
            document = yaml.safe_load(file)
    except (OSError, DataError, yaml.YAMLError, UnicodeDecodeError):
        return set()
    stages = document.get("stages") if isinstance(document, dict) else None
    declared: set[Path] = set()
    for stage in stages.values() if isinstance(stages, dict) else ():
        if not isinstance(stage, dict):
            continue
        wdir = stage.get("wdir", ".") if isinstance(stage.get("wdir", "."), str) else "."
        for key in ("outs", "metrics", "plots"):
            entries = stage.get(key)
            for entry in entries if isinstance(entries, list) else ():
                names = [entry] if isinstance(entry, str) else list(entry) if isinstance(entry, dict) else []
                declared.update(_real(Path(wdir) / name) for name in names if isinstance(name, str))
    return declared


def _parquet_is_ours(path: Path, columns: set[str]) -> bool:
    import pyarrow.parquet as pq

    try:
        with open_plain_file(path) as file:
            return columns <= set(pq.read_schema(file).names)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a Parquet file of ours
        return False


def made_by_histosynth(folder: PathLike) -> bool:
    """Whether the existing folder ``folder`` may be replaced: empty, or ours (see the module docstring)."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    if not names:
        return True
    marker = folder / MARKER
    if MARKER in names and stat.S_ISREG(os.lstat(marker).st_mode):
        return True
    declared = _declared_dvc_outputs()
    real = _real(folder)
    if real in declared or all(_real(folder / name) in declared for name in names):
        return True
    return any(name in names and _parquet_is_ours(folder / name, columns) for name, columns in _OUR_PARQUET.items())


def _refuse_unsafe_place(path: Path, label: str) -> os.stat_result | None:
    """Refuse a link, the root folder, the current or home folder or a folder above them; return the
    path's lstat (None: nothing there yet)."""
    st = _lstat(_absolute(path), label)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise OutputRefused(f"{path}: a symbolic link; the {label} is never written through a link (it would "
                            f"replace the link or what it points to): give the real path ({os.path.realpath(path)}) "
                            "or another one")
    real = _real(path)
    if real == Path(real.anchor):
        raise OutputRefused(f"{path}: the root folder cannot be the {label}; {_FIX}")
    _refuse_protected(path, real, label)
    return st


def _refuse_existing_folder(path: Path, st: os.stat_result | None, label: str) -> None:
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise OutputRefused(f"{path}: {_kind(st.st_mode)}, not a folder; the {label} must be a folder: {_FIX}")
    if not made_by_histosynth(path):
        raise OutputRefused(f"{path}: an existing folder that histosynth did not make (it holds files and no "
                            f"{MARKER} marker), which the {label} would replace; {_FIX}, or remove it yourself (if "
                            f"an older histosynth wrote it, an empty file {MARKER} in it lets it be replaced)")


def check_replaceable_folder(path: PathLike, label: str = "output folder") -> None:
    """Refuse (OutputRefused) a folder output that is not ours to replace (see the module docstring)."""
    path = Path(path)
    _refuse_existing_folder(path, _refuse_unsafe_place(path, label), label)


def check_replaceable_file(path: PathLike, recognise: Callable[[Path], bool], what: str,
                           label: str = "output file") -> None:
    """Refuse a file output that is a link, a folder, a device, a FIFO or a socket, or an existing
    file that ``recognise`` does not know as ``what`` written by histosynth."""
    path = Path(path)
    st = _lstat(_absolute(path), label)
    if st is None:
        return
    if stat.S_ISLNK(st.st_mode):
        if _inside(_real(path), current_folder().resolve() / ".dvc" / "cache"):
            return  # `dvc checkout` with cache.type symlink: the link is replaced, as DVC itself does
        raise OutputRefused(f"{path}: a symbolic link; the {label} is never written through a link: give the real "
                            "path or another one")
    if not stat.S_ISREG(st.st_mode):
        raise OutputRefused(f"{path}: {_kind(st.st_mode)}, not a file; the {label} must be a file: choose "
                            "another path")
    if not recognise(path):
        raise OutputRefused(f"{path}: an existing file that is not {what} written by histosynth, which the {label} "
                            "would replace; choose another name, or remove it yourself")


def file_head_holds(path: Path, needles: tuple[bytes, ...], within: int = 4096) -> bool:
    """Whether the first ``within`` bytes of the plain file ``path`` hold one of ``needles``."""
    try:
        with open_plain_file(path) as file:
            head = file.read(within)
    except (OSError, DataError):
        return False
    return any(needle in head for needle in needles)


def mark_as_output(folder: PathLike) -> Path:
    """Make ``folder`` (and its parents) if needed and put the marker in it: a folder that a stage
    fills in place (the model folder, the training report) rather than replacing it whole."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(folder / MARKER, "x", encoding="utf-8") as file:
            file.write(MARKER_TEXT)
    except FileExistsError:
        pass
    return folder


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None] | None = None,
                  files: Mapping[str, tuple[PathLike | None, Callable[[Path], bool], str]] | None = None,
                  roots: Mapping[str, PathLike | None] | None = None) -> None:
    """Check a command's outputs before it reads or writes anything.

    ``outputs``: folder outputs by what they are ("output folder", "report folder");
    ``files``: file outputs, each (path, recognise, what it is); ``inputs``: what the command
    reads, by what it is ("real images"): no output may be one, lie inside one or hold one;
    ``roots``: folders the command reads named files from (``data.root``): an output may lie
    inside one, but not be one or hold one. None entries are left out.
    """
    folders = {label: Path(path) for label, path in outputs.items() if path is not None}
    file_outputs = {label: spec for label, spec in (files or {}).items() if spec[0] is not None}
    found = {label: _refuse_unsafe_place(path, label) for label, path in folders.items()}
    written = {label: (Path(path), _real(path)) for label, path in
               [*folders.items(), *((label, spec[0]) for label, spec in file_outputs.items())]}
    read = {label: (Path(path), _real(path), False) for label, path in (inputs or {}).items() if path is not None}
    read |= {label: (Path(path), _real(path), True) for label, path in (roots or {}).items() if path is not None}
    for label, (path, real) in written.items():
        for other, (their_path, theirs, may_hold) in read.items():
            if _inside(theirs, real) or (_inside(real, theirs) and not may_hold):
                relation = ("is" if real == theirs else "lies inside" if _inside(real, theirs) else "holds")
                raise OutputRefused(f"{path}: the {label} {relation} {their_path}, which this command reads "
                                    f"({other}); writing there would change or remove its input: choose another "
                                    f"{label}")
        for other, (their_path, theirs) in written.items():
            if other != label and (_inside(real, theirs) or _inside(theirs, real)):
                raise OutputRefused(f"{path}: the {label} and the {other} ({their_path}) overlap; give them "
                                    "separate paths")
    for label, path in folders.items():
        _refuse_existing_folder(path, found[label], label)
    for label, (path, recognise, what) in file_outputs.items():
        check_replaceable_file(path, recognise, what, label)
