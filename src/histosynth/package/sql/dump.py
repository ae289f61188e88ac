"""SQL dumps of the package database, one per dialect, rendered by SQLAlchemy.

DDL is compiled per dialect from the tables in :mod:`histosynth.package.sql.schema`; rows go in as
multi-row INSERTs whose values SQLAlchemy renders as literals (``literal_binds``), so every
string is quoted and escaped by the dialect, never pasted into SQL here. A dump drops its tables
first (children before parents), so it reloads over a previous load, and holds no timestamp:
the same database always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from sqlalchemy import Dialect, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable, ExecutableDDLElement
from sqlalchemy.sql import Executable

from histosynth import progress
from histosynth import __version__
from histosynth.errors import ConfigError
from histosynth.fsutil import remove_stale_temporaries, temporary_name
from histosynth.output_policy import file_head_holds
from histosynth.package.sql import schema
from histosynth.package.sql.records import PackageDatabase

log = logging.getLogger(__name__)

DIALECTS = ("mysql", "postgresql", "sqlite")
# Rows per INSERT: few statements for the servers to parse, small strings for us to build.
INSERT_ROWS = 500

_DIALECTS = {"mysql": mysql.dialect, "postgresql": postgresql.dialect, "sqlite": sqlite.dialect}
_TITLES = {"mysql": "MySQL/MariaDB", "postgresql": "PostgreSQL", "sqlite": "SQLite"}
_LOAD_COMMANDS = {
    "mysql": "mariadb DATABASE < mysql.sql   (or: mysql DATABASE < mysql.sql)",
    "postgresql": "psql -v ON_ERROR_STOP=1 -d DATABASE -f postgresql.sql",
    "sqlite": "sqlite3 package.db < sqlite.sql",
}
# Session settings the rendered literals rely on. MySQL: SQLAlchemy escapes backslashes in string
# literals, which the server reads back only without NO_BACKSLASH_ESCAPES, so the dump sets the
# mode itself (strict: refuse rather than truncate a value).
_SESSION = {
    "mysql": ("SET NAMES utf8mb4", "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"),
    "postgresql": ("SET client_encoding = 'UTF8'", "SET standard_conforming_strings = on",
                   "SET client_min_messages = warning"),  # no notices for tables not there to drop
    "sqlite": ("PRAGMA foreign_keys = ON",),
}
# Where the transaction opens: PostgreSQL and SQLite take the DDL into it; MySQL commits DDL implicitly.
_BEGIN_BEFORE_DDL = {"mysql": False, "postgresql": True, "sqlite": True}
_BEGIN = {"mysql": "START TRANSACTION", "postgresql": "BEGIN", "sqlite": "BEGIN"}


def dialect_of(name: str) -> Dialect:
    if name not in _DIALECTS:
        raise ConfigError(f"unknown SQL dialect {name!r}; choose one of {', '.join(DIALECTS)}")
    # "named" parameters: with the format/pyformat styles of the MySQL and PostgreSQL drivers,
    # SQLAlchemy would double every '%' inside rendered string literals.
    return _DIALECTS[name](paramstyle="named")


def _statement(element: Executable | ExecutableDDLElement, dialect: Dialect) -> str:
    return str(element.compile(dialect=dialect, compile_kwargs={"literal_binds": True})).strip() + ";\n"


HEADER_MARK = "dump of a histosynth package database"


def is_sql_dump(path: Path) -> bool:
    """Whether the file ``path`` starts as a dump histosynth wrote (its header line says so)."""
    return file_head_holds(path, (HEADER_MARK.encode(),), within=200)


def _header(db: PackageDatabase, name: str) -> str:
    counts = ", ".join(f"{table.name} {db.count(table)}" for table in schema.TABLES)
    return (f"-- {_TITLES[name]} {HEADER_MARK}, written by histosynth {__version__}.\n"
            f"-- Rows: {counts}.\n"
            f"-- Load (replaces the tables of these names): {_LOAD_COMMANDS[name]}\n\n")


def render(db: PackageDatabase, name: str) -> Iterator[str]:
    """The dump for dialect ``name``, a statement (or the header) at a time."""
    dialect = dialect_of(name)
    yield _header(db, name)
    yield from (f"{setting};\n" for setting in _SESSION[name])
    if _BEGIN_BEFORE_DDL[name]:
        yield f"{_BEGIN[name]};\n"
    yield "\n"
    for table in reversed(schema.TABLES):
        yield _statement(DropTable(table, if_exists=True), dialect)
    for table in schema.TABLES:
        yield "\n" + _statement(CreateTable(table), dialect)
        yield from (_statement(CreateIndex(index), dialect) for index in sorted(table.indexes, key=lambda i: i.name))
    if not _BEGIN_BEFORE_DDL[name]:
        yield f"\n{_BEGIN[name]};\n"
    for table in schema.TABLES:
        yield "\n"
        n_chunks = -(-db.count(table) // INSERT_ROWS)
        chunks = progress.bar(db.chunks(table, INSERT_ROWS), total=n_chunks, desc=f"{name} {table.name}",
                              unit="insert", leave=False, min_total=20)
        yield from (_statement(insert(table).values(rows), dialect) for rows in chunks)
    yield "\nCOMMIT;\n"


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[IO[str]]:
    """A text file written beside ``path`` and moved over it only when complete (what a killed run
    left beside it goes first)."""
    remove_stale_temporaries(path)
    tmp = path.with_name(temporary_name(path))
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            yield out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_dump(db: PackageDatabase, name: str, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("writing the %s dump of %d images to %s", name, db.count(schema.images), path)
    with _replacing(path) as out:
        out.writelines(render(db, name))
    return path


# From this many images on, the dialects are rendered in parallel processes (about 9 CPU s per
# 100k images each, bound by SQLAlchemy's literal rendering); below it, starting processes costs
# more than it saves.
PARALLEL_FROM_IMAGES = 20_000


def write_dumps(db: PackageDatabase, out_dir: Path, dialects: Iterable[str] = DIALECTS) -> dict[str, Path]:
    """``out_dir/<dialect>.sql`` for each dialect; each file is replaced only when complete."""
    names = list(dialects)
    for name in names:
        dialect_of(name)  # an unknown name fails before anything is written
    paths = {name: Path(out_dir) / f"{name}.sql" for name in names}
    workers = min(len(names), os.cpu_count() or 1)
    if len(db.metadata) < PARALLEL_FROM_IMAGES or workers < 2:
        return {name: write_dump(db, name, path) for name, path in paths.items()}
    # spawn, not fork: the caller may hold torch's threads, which a forked child would inherit stuck
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(write_dump, db, name, path) for name, path in paths.items()}
        return {name: future.result() for name, future in futures.items()}
