"""Groups of a ``folder:`` source's images (``data.group``), and duplicates joining groups.

A group is what must not straddle two splits: a patient, a slide, the original an image was
flipped or rotated from. The rules (docs/data.md, "Splits, groups and duplicates"):

- ``none``: every image is its own group (its id);
- ``folder``: the sub-folder ``level`` levels below the class folder, i.e. path parts 1..level
  of ``<class>/<patient>/[<slide>/]<image>``; the same patient folder under two classes is
  one group;
- ``regex``: the named group ``group`` of ``data.group.pattern`` searched in the file name;
- ``csv``: the CSV file ``data.group.csv`` with the columns ``file`` (the image's path inside
  the source folder, ``/``-separated, e.g. ``tumour/P01_a.png``) and ``group``.

An image the rule gives no group is an error that names it: a silent fallback would leak.
With ``data.duplicates.action: group`` (the default for folders), images that are exact or
near-duplicates of each other (histosynth.data.duplicates) join one group: the group of
whichever image comes first keeps its name.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import regex

from histosynth.config.data import GROUP_PATTERN_NAME, DataParams, GroupParams
from histosynth.data.duplicates import find_matches
from histosynth.data.fingerprint import Fingerprints, fingerprint_all
from histosynth.errors import ConfigError, DataError
from histosynth.plain_files import NotAPlainFile, open_plain_file

log = logging.getLogger(__name__)

SHOWN = 5  # file names quoted in an error
# data.group.pattern's time budget for all file names (a sane pattern needs microseconds per name)
PATTERN_SECONDS = 2.0
PATTERN_SECONDS_PER_NAME = 0.001
MAX_GROUP_CSV_BYTES = 64 << 20  # a line per image: about a million images


def assign_groups(relpaths: Sequence[str], ids: Sequence[str], image: Callable[[int], np.ndarray],
                  params: DataParams) -> list[str]:
    """The group of each image by ``data.group``, joined by duplicates where ``data.duplicates`` says so."""
    groups = image_groups(relpaths, ids, params.group)
    if params.duplicate_action == "group":
        groups = join_duplicate_groups(groups, len(relpaths), image, params.image_size,
                                       params.duplicates.near_max_distance)
    return groups


def image_groups(relpaths: Sequence[str], ids: Sequence[str], rule: GroupParams) -> list[str]:
    """The group of each image (``relpaths``: ``<class>/.../<file>`` inside the source folder)."""
    if rule.by == "none":
        return list(ids)
    if rule.by == "folder":
        return _by_folder(relpaths, rule.level)
    if rule.by == "regex":
        return _by_pattern(relpaths, rule.pattern)
    return _by_csv(relpaths, Path(rule.csv).expanduser())


def _by_folder(relpaths: Sequence[str], level: int) -> list[str]:
    parts = [PurePosixPath(path).parts for path in relpaths]
    shallow = [path for path, p in zip(relpaths, parts) if len(p) < level + 2]
    if shallow:
        raise DataError(f"data.group.by = folder (level {level}): {len(shallow)} image(s) are not inside a"
                        f" sub-folder {level} level(s) below their class folder: {_examples(shallow)}; move them"
                        " into patient folders (<class>/<patient>/<image>) or pick another rule")
    return ["/".join(p[1:level + 1]) for p in parts]


def _by_pattern(relpaths: Sequence[str], pattern: str) -> list[str]:
    """The pattern's group in each file name, within a time budget: a pattern that backtracks
    catastrophically (``(a|a)+$`` on a long name) would otherwise run for ever."""
    compiled = regex.compile(pattern)
    started = time.monotonic()
    deadline = started + PATTERN_SECONDS + PATTERN_SECONDS_PER_NAME * len(relpaths)
    groups, unmatched = [], []
    for path in relpaths:
        name = PurePosixPath(path).name
        try:
            found = compiled.search(name, timeout=max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise ConfigError(f"data.group.pattern = {pattern!r}: stopped after {time.monotonic() - started:.0f} s "
                              f"at the file name {name!r} (nested repetition such as (a+)+ or (a|a)+ backtracks "
                              r"without end); simplify the pattern, e.g. ^(?P<group>[A-Z]+\d+)_") from None
        group = found.group(GROUP_PATTERN_NAME) if found else None
        if not group:
            unmatched.append(path)
        groups.append(group)
    if unmatched:
        raise DataError(f"data.group.pattern = {pattern!r} finds no (or an empty) group in the file names of"
                        f" {len(unmatched)} image(s): {_examples(unmatched)}; fix the pattern or rename the files")
    return groups


def _by_csv(relpaths: Sequence[str], path: Path) -> list[str]:
    mapping = read_group_csv(path)
    missing = [p for p in relpaths if p not in mapping]
    if missing:
        raise DataError(f"data.group.csv = {str(path)!r} has no line for {len(missing)} image(s):"
                        f" {_examples(missing)}; add a line '<path inside the source folder>,<group>' for each")
    unused = len(mapping.keys() - set(relpaths))
    if unused:
        log.info("%s: %d row(s) name no image that was read (missing, skipped or not an image)", path, unused)
    return [mapping[p] for p in relpaths]


def read_group_csv(path: Path) -> dict[str, str]:
    """file -> group from a CSV with the header ``file,group``; DataError for anything else."""
    where = f"data.group.csv = {str(path)!r}"
    try:
        with open_plain_file(path, follow_symlinks=True) as file:  # never a FIFO or device: reading it could hang
            data = file.read(MAX_GROUP_CSV_BYTES + 1)
        if len(data) > MAX_GROUP_CSV_BYTES:
            raise DataError(f"{where}: larger than {MAX_GROUP_CSV_BYTES >> 20} MiB, far more than a line per image "
                            "needs; point data.group.csv at the CSV with the columns file,group")
        with io.StringIO(data.decode("utf-8-sig"), newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "group"} <= set(reader.fieldnames):
                raise DataError(f"{where}: the first line must name the columns file,group"
                                f" (found {','.join(reader.fieldnames or []) or 'nothing'})")
            mapping: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                file, group = (row["file"] or "").strip(), (row["group"] or "").strip()
                if not file or not group:
                    raise DataError(f"{where}, line {line}: empty file or group; every line needs both")
                if mapping.setdefault(file, group) != group:
                    raise DataError(f"{where}, line {line}: {file!r} is given two groups,"
                                    f" {mapping[file]!r} and {group!r}; keep one")
    except FileNotFoundError:
        raise DataError(f"{where}: no such file ({path.resolve()}); point data.group.csv at a CSV with the"
                        " columns file,group") from None
    except NotAPlainFile as err:
        raise DataError(f"{where}: {err}; point data.group.csv at a CSV file with the columns file,group") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{where}: cannot be read as a UTF-8 CSV file ({err})") from None
    return mapping


def join_duplicate_groups(groups: Sequence[str], n: int, image: Callable[[int], np.ndarray], size: int,
                          max_distance: float) -> list[str]:
    """``groups`` with the groups of duplicate images joined under the name of the first one."""
    first = {}
    for k, group in enumerate(groups):
        first.setdefault(group, len(first))
    names = list(first)
    parent = list(range(len(names)))

    def root(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def apart(later: int, earlier: int, _: bool) -> bool:
        return root(first[groups[later]]) != root(first[groups[earlier]])

    prints = fingerprint_all(n, image, size)
    for match in find_matches(prints, image, Fingerprints.empty(), image, max_distance, apart):
        a, b = root(first[groups[match.later]]), root(first[groups[match.earlier]])
        if a != b:
            parent[max(a, b)] = min(a, b)
    joined = [names[root(first[group])] for group in groups]
    before, after = len(names), len(set(joined))
    if after < before:
        log.info("duplicates joined %d groups into %d (data.duplicates.action: group)", before, after)
    return joined


def _examples(paths: Sequence[str]) -> str:
    shown = ", ".join(repr(p) for p in paths[:SHOWN])
    return f"{shown} and {len(paths) - SHOWN} more" if len(paths) > SHOWN else shown
