"""``histosynth verify``: is a package exactly what was published?

Every file is accounted for against three records: the metadata (one row and MD5 per image),
each class folder's ``MD5SUMS`` (which must list the same files with the same MD5s), and the
top-level ``MD5SUMS`` (README, the three metadata files, the three SQL dumps and croissant.json).
The metadata CSV must hold the same rows as the Parquet file, and ``croissant.json`` must give
the same MD5s as ``MD5SUMS`` for the files it lists. A file nobody lists is *extra*, a listed file that is absent is
*missing*, a file whose bytes differ from its record is *modified*; anything else inconsistent
is a *problem*. A package holds plain files and folders only: a symbolic link, device, FIFO or
socket in it is a problem, and is never followed or read.

``deep`` also checks the dumps' content: ``sql/sqlite.sql`` is loaded (with a bounded budget)
and compared with the metadata, and every dump is rendered again and compared byte for byte
(:func:`histosynth.package.sql.check_dumps`); and ``metadata.jsonl`` must hold the Parquet file's
rows. Without it the dumps are checked through the top-level ``MD5SUMS`` only, which packaging wrote
from the same data: 100k images verify in about 2 s instead of 35 s (bench/results/verify.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from histosynth import progress
from histosynth.errors import DataError
from histosynth.md5sums import MD5SUMS_NAME
from histosynth.neutralise import for_terminal
from histosynth.output_policy import MARKER
from histosynth.package.croissant import listed_checksums
from histosynth.package.schema import (
    CARD_NAME, CROISSANT_NAME, IMAGES_DIR, METADATA_CSV, METADATA_JSONL, METADATA_PARQUET, SQL_DIR,
    read_metadata_csv, read_metadata_jsonl, read_metadata_parquet,
)
from histosynth.parallel import ordered_map
from histosynth.plain_files import entry_kind, md5_plain_file, open_plain_file

# histosynth.package.sql.DIALECTS, written out: importing histosynth.package.sql loads SQLAlchemy and torch,
# which only --deep needs (a test keeps the two the same).
DUMPS = tuple(f"{SQL_DIR}/{name}.sql" for name in ("mysql", "postgresql", "sqlite"))
# Top-level files every package has, whatever its MD5SUMS says.
REQUIRED = (MD5SUMS_NAME, CARD_NAME, METADATA_CSV, METADATA_PARQUET, METADATA_JSONL, *DUMPS, CROISSANT_NAME)
# "<md5>  <name>" (text mode) or "<md5> *<name>" (binary mode), as md5sum writes them.
MD5SUMS_LINE = re.compile(r"^([0-9a-f]{32}) [ *](.+)$")
# An MD5SUMS line is about 50 bytes: 64 MiB would list over a million files.
MAX_MD5SUMS_BYTES = 64 << 20


@dataclass
class VerifyReport:
    root: Path
    files_checked: int = 0
    images: int = 0  # rows of the package's metadata (0 when it is unreadable)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.modified or self.problems)

    def lines(self) -> list[str]:
        """What ``histosynth verify`` prints: one line per finding, then a summary line."""
        # File names come from the package: escaped, so that a name cannot forge a line (or an OK)
        out = [f"{kind}: {for_terminal(path)}" for kind, paths in
               (("missing", self.missing), ("extra", self.extra), ("modified", self.modified)) for path in paths]
        out += [f"problem: {for_terminal(problem)}" for problem in self.problems]
        root = for_terminal(self.root)
        if self.ok:
            out.append(f"OK: {root}: {self.files_checked} files intact")
        else:
            out.append(f"FAILED: {root}: {len(self.missing)} missing, {len(self.extra)} extra, "
                       f"{len(self.modified)} modified file(s), {len(self.problems)} other problem(s)")
        return out


def parse_md5sums(path: Path, report: VerifyReport) -> dict[str, str]:
    """``{file name: md5}`` of an MD5SUMS file. Malformed lines are problems, and so is a file listed
    twice, whatever its sums (``md5sum -c`` checks every line: one wrong entry fails it)."""
    where = _rel(path, report.root)
    try:
        with open_plain_file(path) as file:
            data = file.read(MAX_MD5SUMS_BYTES + 1)
    except (OSError, DataError) as err:
        report.problems.append(f"{where}: cannot be read ({err})")
        return {}
    if len(data) > MAX_MD5SUMS_BYTES:
        report.problems.append(f"{where}: larger than {MAX_MD5SUMS_BYTES >> 20} MiB, far more than a package's "
                               "checksums need; not read")
        return {}
    entries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    lines = data.decode("utf-8", errors="replace").split("\n")  # as md5sum reads it: only \n ends a line
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        match = MD5SUMS_LINE.match(line)
        if match is None:
            report.problems.append(f"{where} line {number}: not '<md5>  <file>'")
            continue
        name = match.group(2)
        if name in first_line:
            report.problems.append(f"{where} line {number}: lists {name} a second time (first at line "
                                   f"{first_line[name]}); each file must be listed once")
            if entries[name] != match.group(1):
                report.modified.append(where)
            continue
        first_line[name] = number
        entries[name] = match.group(1)
    return entries


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _present_files(root: Path, report: VerifyReport) -> set[str]:
    """The plain files under ``root`` (paths relative to it, '/'-separated); anything else found is
    reported as a problem and left alone. Plain strings, not Paths: 100k files take 0.2 s."""
    start = os.path.join(str(root), "")
    found, folders = set(), [start]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            report.problems.append(f"{folder[len(start):] or '.'}: cannot list this folder ({err.strerror})")
            continue
        for entry in entries:
            rel = entry.path[len(start):].replace(os.sep, "/")
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                found.add(rel)
            else:
                target = f" to {os.readlink(entry.path)}" if entry.is_symlink() else ""
                report.problems.append(f"{rel}: {entry_kind(entry.path)}{target}; a package holds plain files only "
                                       "(not followed, not read)")
    found.discard(MARKER)  # says that histosynth made the folder; not part of the package (.dvcignore)
    return found


def _read_metadata(root: Path, present: set[str], report: VerifyReport) -> pd.DataFrame | None:
    """The Parquet metadata if it is readable, after checking that the CSV holds the same rows."""
    if METADATA_PARQUET not in present:
        return None  # reported as missing
    try:
        metadata = read_metadata_parquet(root / METADATA_PARQUET)
    except DataError as err:
        report.problems.append(str(err))
        return None
    if METADATA_CSV not in present:
        return metadata
    try:
        csv = read_metadata_csv(root / METADATA_CSV, validate=False)  # it must equal the validated Parquet
    except DataError as err:
        report.problems.append(str(err))
        return metadata
    if not csv.equals(metadata):
        report.problems.append(f"{METADATA_CSV} and {METADATA_PARQUET} do not hold the same rows "
                               f"({_first_difference(csv, metadata)})")
    return metadata


def _first_difference(csv: pd.DataFrame, parquet: pd.DataFrame) -> str:
    if len(csv) != len(parquet):
        return f"{len(csv)} vs {len(parquet)} rows"
    for column in parquet.columns:
        same = (csv[column] == parquet[column]).fillna(False) | (csv[column].isna() & parquet[column].isna())
        if not same.all():
            row = int((~same).to_numpy().argmax())
            return f"first at row {row + 1}, id {parquet['id'].iloc[row]!r}, column {column}"
    return "the column types differ"


def _image_records(root: Path, metadata: pd.DataFrame | None, present: set[str],
                   report: VerifyReport) -> dict[str, str]:
    """``{file: md5}`` of the images and their folders' MD5SUMS files (md5 "" = not hashed here).

    The images come from the metadata or, when it is unreadable, from the class folders' MD5SUMS;
    an MD5SUMS that disagrees with the metadata counts as modified.
    """
    if metadata is not None:
        folders = sorted(metadata["class_folder"].unique())
    else:
        folders = sorted({p.split("/")[1] for p in present if p.startswith(f"{IMAGES_DIR}/") and p.count("/") == 2})
    expected: dict[str, str] = {}
    for folder in folders:
        sums_path = f"{IMAGES_DIR}/{folder}/{MD5SUMS_NAME}"
        listed = parse_md5sums(root / sums_path, report) if sums_path in present else {}
        if sums_path not in present:
            report.missing.append(sums_path)
        if metadata is not None:
            rows = metadata[metadata["class_folder"] == folder]
            recorded = dict(zip(rows["id"] + ".png", rows["md5"]))
            if sums_path in present and listed != recorded:
                report.modified.append(sums_path)
                differ = sorted({name for name in listed.keys() | recorded.keys()
                                 if listed.get(name) != recorded.get(name)})
                report.problems.append(f"{sums_path} disagrees with the metadata on {len(differ)} file(s), "
                                       f"e.g. {differ[0]}")
            listed = recorded
        expected[sums_path] = ""
        expected.update({f"{IMAGES_DIR}/{folder}/{name}": md5 for name, md5 in listed.items()})
    return expected


def _top_records(root: Path, present: set[str], report: VerifyReport) -> dict[str, str]:
    """``{file: md5}`` of the top-level files from MD5SUMS, plus the files every package has."""
    if MD5SUMS_NAME not in present:
        report.missing.append(MD5SUMS_NAME)
        return {name: "" for name in REQUIRED[1:]}
    expected = parse_md5sums(root / MD5SUMS_NAME, report)
    for name in REQUIRED[1:]:
        if name not in expected:
            report.problems.append(f"{MD5SUMS_NAME} does not list {name}")
            expected[name] = ""
    return {MD5SUMS_NAME: "", **expected}


def _check_croissant(root: Path, present: set[str], expected: dict[str, str], report: VerifyReport) -> None:
    """croissant.json must list the files MD5SUMS lists (but itself) with the same MD5s."""
    if CROISSANT_NAME not in present:
        return  # reported as missing
    try:
        listed = listed_checksums(root / CROISSANT_NAME)
    except (OSError, ValueError, DataError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        report.problems.append(f"{CROISSANT_NAME}: not a readable Croissant file ({err})")
        return
    recorded = {name: md5 for name, md5 in expected.items() if name not in (MD5SUMS_NAME, CROISSANT_NAME)}
    differ = sorted(name for name in listed.keys() | recorded.keys() if listed.get(name) != recorded.get(name))
    if differ:
        report.problems.append(f"{CROISSANT_NAME} and {MD5SUMS_NAME} disagree on {len(differ)} file(s), "
                               f"e.g. {differ[0]}")


def _check_jsonl(root: Path, present: set[str], metadata: pd.DataFrame, report: VerifyReport) -> None:
    if METADATA_JSONL not in present:
        return  # reported as missing
    try:
        rows = read_metadata_jsonl(root / METADATA_JSONL)
    except DataError as err:
        report.problems.append(str(err))
        return
    if not rows.equals(metadata):
        report.problems.append(f"{METADATA_JSONL} and {METADATA_PARQUET} do not hold the same rows "
                               f"({_first_difference(rows, metadata)})")


def _hash_and_compare(root: Path, expected: dict[str, str], present: set[str], report: VerifyReport) -> None:
    report.missing += [path for path in expected if path not in present]
    found = [path for path in expected if path in present]
    report.files_checked = len(found)
    targets = sorted(path for path in found if expected[path])  # "" = no MD5 to compare with
    hashes = zip(targets, ordered_map(lambda path: _md5(root / path), targets))
    for path, md5 in progress.bar(hashes, total=len(targets), unit="file", desc="verify", mininterval=1.0,
                                  min_total=1000):
        if md5 != expected[path]:
            report.modified.append(path)


def _md5(path: Path) -> str | None:
    """MD5 of a plain file; None when it went away or was swapped for something else meanwhile."""
    try:
        return md5_plain_file(path)
    except (OSError, DataError):
        return None


def verify_package(path: Path | str, deep: bool = False) -> VerifyReport:
    """Check every file of the package at ``path`` (``deep``: also the dumps' content, see the module
    docstring); a path that holds no package is a DataError."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: {'is not a folder' if root.exists() else 'does not exist'}; "
                        "give the folder of a package (e.g. data/package)")
    if not any((root / name).exists() for name in (*REQUIRED, IMAGES_DIR)):
        raise DataError(f"{root}: not a histosynth package (no {', '.join(REQUIRED)} or {IMAGES_DIR}/ in it)")
    report = VerifyReport(root)
    present = _present_files(root, report)
    metadata = _read_metadata(root, present, report)
    expected = _top_records(root, present, report)
    _check_croissant(root, present, expected, report)
    expected.update(_image_records(root, metadata, present, report))
    report.extra += sorted(present - expected.keys())
    _hash_and_compare(root, expected, present, report)
    if metadata is not None:
        report.images = len(metadata)
        if deep:
            from histosynth.package.sql import check_dumps

            _check_jsonl(root, present, metadata, report)
            report.problems += check_dumps(root, metadata)
    report.missing = sorted(set(report.missing))
    report.modified.sort()
    return report
