"""Reading a package's ``sql/sqlite.sql`` back: into an in-memory SQLite database, then into rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from histosynth.errors import DataError
from histosynth.fsutil import read_plain_bytes
from histosynth.package.schema import COLUMNS
from histosynth.sql import schema
from histosynth.sql.records import PackageDatabase, Row, gan_ids_by_run


# Statements a histosynth dump never holds: ATTACH (like VACUUM INTO) reads or writes files; views
# and triggers would run code when the tables are read back; a recursive CTE can run for ever; temp
# tables live outside the main database (and its page budget); a function call (zeroblob,
# randomblob, printf...) makes big values out of little text: a dump holds literal values only.
_DENIED = frozenset({
    sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_RECURSIVE,
    sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_TEMP_VIEW, sqlite3.SQLITE_CREATE_TRIGGER,
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER, sqlite3.SQLITE_CREATE_VTABLE,
    sqlite3.SQLITE_CREATE_TEMP_TABLE, sqlite3.SQLITE_CREATE_TEMP_INDEX, sqlite3.SQLITE_FUNCTION,
})
# Work and memory a dump may cost, in proportion to its size. Loading a histosynth dump and
# reading it back takes about 0.6 SQLite VM instructions and 1.4 bytes of database per byte of
# SQL (measured on a 10k-image package); SQLite runs about 90 M instructions/s on one core. The
# allowance is 30 times what a real dump needs and stops any other query within a few seconds
# (0.2 s plus 0.2 s per MB of dump).
STEP = 1000  # VM instructions between two calls of the progress handler
INSTRUCTIONS_PER_BYTE = 20
BASE_INSTRUCTIONS = 20_000_000
DATABASE_BYTES_PER_BYTE = 8
BASE_DATABASE_BYTES = 64 << 20
MAX_VALUE_BYTES = 64 << 20  # the largest string or blob (the GAN descriptions are about 100 kB)
_OVER_BUDGET = "interrupted"  # what SQLite says when the progress handler stops a statement


def _dump_statements_only(action: int, arg1: str | None, arg2: str | None, database: str | None,
                          trigger: str | None) -> int:
    """SQLite authorizer for a dump from elsewhere (a fetched package): nothing in _DENIED, nothing in the
    temp database, and no pragma but the dump's foreign_keys."""
    if action in _DENIED or database == "temp":
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg1 != "foreign_keys":
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class _Budget:
    """A progress handler that stops SQLite after ``instructions`` VM instructions in all."""

    def __init__(self, instructions: int) -> None:
        self.calls_left = instructions // STEP

    def __call__(self) -> int:
        self.calls_left -= 1
        return 1 if self.calls_left < 0 else 0


def _bound(driver: sqlite3.Connection, script_bytes: int) -> None:
    """Limit the work, the database size and the value sizes a dump of this size may cost."""
    driver.set_progress_handler(_Budget(BASE_INSTRUCTIONS + INSTRUCTIONS_PER_BYTE * script_bytes), STEP)
    page_size = driver.execute("PRAGMA page_size").fetchone()[0]
    max_pages = (BASE_DATABASE_BYTES + DATABASE_BYTES_PER_BYTE * script_bytes) // page_size
    for schema_name in ("main", "temp"):  # temp too: the authorizer refuses temp tables, this caps them anyway
        driver.execute(f"PRAGMA {schema_name}.max_page_count = {int(max_pages)}")
    driver.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)


def refusal(where: str | Path, err: Exception, what: str) -> DataError:
    """The DataError for a failed dump query: over budget, or ``what`` went wrong."""
    detail = " ".join(str(err).split())
    if _OVER_BUDGET in detail:
        return DataError(f"{where}: takes far more work to load and read than a histosynth dump of its size "
                         "(a query that does not end?); refused. Fetch the package again, or rebuild it "
                         "(`dvc repro package`)")
    if "authorization denied" in detail or "not authorized" in detail:
        return DataError(f"{where}: does not load into SQLite: it attaches files, sets pragmas, creates views, "
                         "triggers or temp tables, calls functions or runs recursive queries, which the dumps "
                         "histosynth writes never do (refused)")
    if "database or disk is full" in detail:
        return DataError(f"{where}: fills far more database pages than a histosynth dump of its size; refused. Fetch "
                         "the package again, or rebuild it (`dvc repro package`)")
    return DataError(f"{where}: {what} ({detail})")


def load_sqlite_dump(path: Path, where: str | None = None) -> Engine:
    """An engine on a private in-memory SQLite database holding the dump (foreign keys enforced);
    ``where`` names it in errors (default: ``path``).

    The dump must be a plain file. Loading it and every later query on the engine share one
    budget of work in proportion to its size, so a hostile dump cannot make a reader hang.
    """
    path = Path(path)
    # One connection for the engine's lifetime: an in-memory database lives as long as its connection.
    engine = create_engine("sqlite://", poolclass=StaticPool)
    try:
        data = read_plain_bytes(path)
        script = data.decode("utf-8")  # as written: no newline translation inside literals
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            _bound(driver, len(data))
            driver.set_authorizer(_dump_statements_only)
            try:
                driver.executescript(script)
            finally:
                driver.set_authorizer(None)
    except DataError:
        engine.dispose()
        raise
    except (OSError, UnicodeDecodeError, sqlite3.Error) as err:
        engine.dispose()
        raise refusal(where or path, err, "does not load into SQLite") from None
    return engine


def read_records(engine: Engine, where: str) -> dict[str, list[Row]]:
    """Every table but ``images``, in insert order (by primary key), as build_database made them."""
    try:
        with engine.connect() as connection:
            return {table.name: [dict(row) for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)).mappings()]
                    for table in schema.TABLES if table is not schema.images}
    except (SQLAlchemyError, ValueError) as err:  # a missing table or column, a broken JSON document
        raise refusal(where, err, "the tables do not match the package database") from None


def read_images(engine: Engine, where: str) -> pd.DataFrame:
    """The ``images`` table joined with its classes and GAN, as metadata columns (in metadata order)."""
    images, classes, gans = schema.images, schema.class_names, schema.gan_architectures
    query = (
        select(images.c.id, images.c.file_path, classes.c.name.label("class_name"),
               classes.c.folder.label("class_folder"), images.c.class_name.label("label"), images.c.source,
               images.c.split, images.c.group_name.label("group"), images.c.md5, images.c.width, images.c.height,
               images.c.origin,
               gans.c.checkpoint_md5.label("generator_run"), gans.c.arch, images.c.seed, images.c.latent_index,
               images.c.edit_of,
               images.c.confidence, images.c.realism, images.c.copy_ratio, images.c.curation)
        .select_from(images.outerjoin(classes, images.c.class_name == classes.c.id)
                     .outerjoin(gans, images.c.gan == gans.c.id))
    )
    try:
        with engine.connect() as connection:
            result = connection.execute(query)
            return pd.DataFrame(result.all(), columns=list(result.keys()), dtype=object).reindex(columns=list(COLUMNS))
    except SQLAlchemyError as err:
        raise refusal(where, err, "the images table does not match the package database") from None


def database_from_dump(engine: Engine, metadata: pd.DataFrame, where: str) -> PackageDatabase:
    """The database a package's dumps were rendered from: its records as loaded, images from ``metadata``."""
    records = read_records(engine, where)
    runs = set(metadata["generator_run"].dropna())
    unknown = runs - set(gan_ids_by_run(records[schema.gan_architectures.name]))
    if unknown:
        raise DataError(f"{where}: gan_architectures has no GAN with checkpoint {', '.join(sorted(unknown))}, "
                        "which made synthetic images in the metadata")
    return PackageDatabase(records, metadata.reset_index(drop=True))
