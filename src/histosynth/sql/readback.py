"""Reading a package's ``sql/sqlite.sql`` back: into an in-memory SQLite database, then into rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from histosynth.errors import DataError
from histosynth.package.schema import COLUMNS
from histosynth.sql import schema
from histosynth.sql.records import PackageDatabase, Row, gan_ids_by_run


def _dump_statements_only(action: int, arg1: str | None, arg2: str | None, database: str | None,
                          trigger: str | None) -> int:
    """SQLite authorizer for a dump from elsewhere (a fetched package): no ATTACH, which (like
    VACUUM INTO) would read or write files, and no pragma but the dump's foreign_keys."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg1 != "foreign_keys":
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def load_sqlite_dump(path: Path) -> Engine:
    """An engine on a private in-memory SQLite database holding the dump (foreign keys enforced)."""
    path = Path(path)
    # One connection for the engine's lifetime: an in-memory database lives as long as its connection.
    engine = create_engine("sqlite://", poolclass=StaticPool)
    try:
        script = path.read_bytes().decode("utf-8")  # as written: no newline translation inside literals
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            driver.set_authorizer(_dump_statements_only)
            try:
                driver.executescript(script)
            finally:
                driver.set_authorizer(None)
    except (OSError, UnicodeDecodeError, sqlite3.Error) as err:
        engine.dispose()
        if "authorization denied" in str(err):
            raise DataError(f"{path}: does not load into SQLite: it attaches files or sets pragmas, which the "
                            "dumps histosynth writes never do (refused)") from None
        raise DataError(f"{path}: does not load into SQLite ({err})") from None
    return engine


def read_records(engine: Engine, where: str) -> dict[str, list[Row]]:
    """Every table but ``images``, in insert order (by primary key), as build_database made them."""
    try:
        with engine.connect() as connection:
            return {table.name: [dict(row) for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)).mappings()]
                    for table in schema.TABLES if table is not schema.images}
    except (SQLAlchemyError, ValueError) as err:  # a missing table or column, a broken JSON document
        raise DataError(f"{where}: the tables do not match the package database ({err})".replace("\n", " ")) from None


def read_images(engine: Engine, where: str) -> pd.DataFrame:
    """The ``images`` table joined with its classes and GAN, as metadata columns (in metadata order)."""
    images, classes, gans = schema.images, schema.class_names, schema.gan_architectures
    query = (
        select(images.c.id, images.c.file_path, classes.c.name.label("class_name"),
               classes.c.folder.label("class_folder"), images.c.class_name.label("label"), images.c.source,
               images.c.split, images.c.group_name.label("group"), images.c.md5, images.c.width, images.c.height,
               images.c.origin,
               gans.c.checkpoint_md5.label("generator_run"), gans.c.arch, images.c.seed, images.c.latent_index,
               images.c.confidence, images.c.realism, images.c.copy_ratio, images.c.curation)
        .select_from(images.outerjoin(classes, images.c.class_name == classes.c.id)
                     .outerjoin(gans, images.c.gan == gans.c.id))
    )
    try:
        with engine.connect() as connection:
            result = connection.execute(query)
            return pd.DataFrame(result.all(), columns=list(result.keys()), dtype=object).reindex(columns=list(COLUMNS))
    except SQLAlchemyError as err:
        raise DataError(f"{where}: the images table does not match the package database ({err})"
                        .replace("\n", " ")) from None


def database_from_dump(engine: Engine, metadata: pd.DataFrame, where: str) -> PackageDatabase:
    """The database a package's dumps were rendered from: its records as loaded, images from ``metadata``."""
    records = read_records(engine, where)
    runs = set(metadata["generator_run"].dropna())
    unknown = runs - set(gan_ids_by_run(records[schema.gan_architectures.name]))
    if unknown:
        raise DataError(f"{where}: gan_architectures has no GAN with checkpoint {', '.join(sorted(unknown))}, "
                        "which made synthetic images in the metadata")
    return PackageDatabase(records, metadata.reset_index(drop=True))
