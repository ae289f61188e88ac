"""Do a package's SQL dumps still hold its metadata? (``histosynth verify`` calls :func:`check_dumps`.)

Only with ``histosynth verify --deep``: by default verify checks the dumps through the top-level
``MD5SUMS``.

1. ``sql/sqlite.sql`` is loaded into an in-memory SQLite database (with a bounded budget, see
   :func:`histosynth.package.sql.readback.load_sqlite_dump`); its classes and images are
   compared with the metadata row by row (an image added, removed or changed is named).
2. The database is rendered again from the metadata and the GAN/training/QA records that
   ``sqlite.sql`` holds, and every dump must equal that rendering byte for byte: a MySQL or
   PostgreSQL dump that no longer matches is found without a server of its kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from histosynth.errors import DataError
from histosynth.manifest import class_names_of
from histosynth.package.schema import COLUMNS
from histosynth.package.sql import schema
from histosynth.package.sql.dump import DIALECTS, render
from histosynth.package.sql.readback import database_from_dump, load_sqlite_dump, read_images, read_records
from histosynth.plain_files import is_plain_file

SQL_DIR = "sql"
# Ids listed in a problem line (the count says how many there are).
SHOWN = 5


def dump_path(package_dir: Path, dialect: str) -> Path:
    return Path(package_dir) / SQL_DIR / f"{dialect}.sql"


def check_dumps(package_dir: Path, metadata: pd.DataFrame) -> list[str]:
    """Problems with ``package_dir/sql/*.sql`` given the package's ``metadata``; [] when they match."""
    package_dir = Path(package_dir)
    problems = [f"{SQL_DIR}/{name}.sql is missing or not a plain file" for name in DIALECTS
                if name != "sqlite" and not is_plain_file(dump_path(package_dir, name))]
    sqlite_dump = dump_path(package_dir, "sqlite")
    if not is_plain_file(sqlite_dump):
        return problems + [f"{SQL_DIR}/sqlite.sql is missing or not a plain file, and with it the GAN and QA "
                           "records the dumps are checked against; rebuild the package (`dvc repro package`)"]
    where = f"{SQL_DIR}/sqlite.sql"
    try:
        engine = load_sqlite_dump(sqlite_dump, where)
    except DataError as err:
        return problems + [str(err)]
    try:
        problems += dump_vs_metadata(engine, metadata, where)
        db = database_from_dump(engine, metadata, where)
    except DataError as err:
        return problems + [str(err)]
    finally:
        engine.dispose()
    for name in DIALECTS:
        path = dump_path(package_dir, name)
        line = is_plain_file(path) and first_difference(render(db, name), path)
        if line:
            problems.append(f"{SQL_DIR}/{name}.sql line {line}: not what the metadata and the records in "
                            f"{SQL_DIR}/sqlite.sql render; rebuild the package (`dvc repro package`) or re-export "
                            f"the dump (`histosynth export-sql`)")
    return problems


def dump_vs_metadata(engine: Engine, metadata: pd.DataFrame, where: str) -> list[str]:
    """Differences between the loaded dump's classes and images and ``metadata``."""
    problems = []
    dumped_classes = {row["id"]: (row["name"], row["folder"])
                      for row in read_records(engine, where)[schema.class_names.name]}
    folders = metadata.groupby("label")["class_folder"].first()
    described_classes = {label: (name, folders[label]) for label, name in enumerate(class_names_of(metadata))}
    differing = [f"label {label}: {_class(dumped_classes.get(label))} in the dump, "
                 f"{_class(described_classes.get(label))} in the metadata"
                 for label in sorted(set(dumped_classes) | set(described_classes))
                 if dumped_classes.get(label) != described_classes.get(label)]
    if differing:
        problems.append(f"{where}: class_names differs from the metadata: {_show(differing, show_item=str)}")
    dumped = _rows_by_id(read_images(engine, where))
    described = _rows_by_id(metadata)
    missing = [key for key in described if key not in dumped]
    extra = [key for key in dumped if key not in described]
    changed = [(key, _differing_columns(described[key], dumped[key]))
               for key in described if key in dumped and described[key] != dumped[key]]
    if missing:
        problems.append(f"{where}: {_images(len(missing))} of the metadata missing from the images table: "
                        f"{_show(missing)}")
    if extra:
        problems.append(f"{where}: {_images(len(extra))} in the images table not in the metadata: {_show(extra)}")
    if changed:
        shown = "; ".join(f"{key!r} ({', '.join(columns)})" for key, columns in changed[:SHOWN])
        more = f"; and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
        problems.append(f"{where}: {_images(len(changed))} differing from the metadata: {shown}{more}")
    return problems


def _rows_by_id(frame: pd.DataFrame) -> dict[str, tuple[Any, ...]]:
    values = frame[list(COLUMNS)].astype(object)
    values = values.where(frame[list(COLUMNS)].notna(), None)
    return {row[0]: row for row in values.itertuples(index=False, name=None)}


def _differing_columns(a: tuple[Any, ...], b: tuple[Any, ...]) -> list[str]:
    return [column for column, x, y in zip(COLUMNS, a, b) if x != y]


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _class(name_and_folder: tuple[str, str] | None) -> str:
    return "nothing" if name_and_folder is None else f"{name_and_folder[0]!r} (folder {name_and_folder[1]})"


def _show(items: list[Any], show_item: Callable[[Any], str] = repr) -> str:
    shown = ", ".join(show_item(item) for item in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _lines(pieces: Iterable[str]) -> Iterator[str]:
    """The text split after each newline, as a file opened with ``newline="\\n"`` reads it."""
    pending = ""
    for piece in pieces:
        *complete, pending = (pending + piece).split("\n")
        yield from (line + "\n" for line in complete)
    if pending:
        yield pending


def first_difference(pieces: Iterable[str], path: Path) -> int | None:
    """The first line (1-based) where ``path`` differs from the text ``pieces`` make; None if equal."""
    with open(path, encoding="utf-8", errors="replace", newline="\n") as file:
        for number, (want, got) in enumerate(zip_longest(_lines(pieces), file), start=1):
            if want != got:
                return number
    return None
