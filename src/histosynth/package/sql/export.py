"""``histosynth export-sql``: a package's database as a dump for one dialect, made from the package.

The images come from ``metadata.parquet``; the GAN, training, QA and dataset records from
``sql/sqlite.sql`` (the package holds them nowhere else). The two must agree, so an export is
byte for byte the dump the package stage wrote for that dialect; written to a file or piped:

    histosynth export-sql data/package --dialect postgresql | psql -v ON_ERROR_STOP=1 -d mydb
"""

from __future__ import annotations

import sys
from pathlib import Path

from histosynth.errors import DataError
from histosynth.output_policy import check_outputs
from histosynth.package.schema import METADATA_PARQUET, read_metadata_parquet
from histosynth.package.sql.check import SQL_DIR, dump_path, dump_vs_metadata
from histosynth.package.sql.dump import dialect_of, is_sql_dump, render, write_dump
from histosynth.package.sql.readback import database_from_dump, load_sqlite_dump


def export_sql(package_dir: Path, dialect: str, out: Path | None = None) -> None:
    """Write the ``dialect`` dump of ``package_dir``'s database to ``out`` (None: standard output)."""
    dialect_of(dialect)
    package_dir = Path(package_dir)
    check_outputs({}, {"package": package_dir}, files={"output file": (out, is_sql_dump, "an SQL dump")})
    if not (package_dir / METADATA_PARQUET).exists():
        raise DataError(f"{package_dir}: no {METADATA_PARQUET}; give the folder of a histosynth package "
                        "(e.g. data/package)")
    metadata = read_metadata_parquet(package_dir / METADATA_PARQUET)
    records_dump = dump_path(package_dir, "sqlite")
    if not records_dump.exists() and not records_dump.is_symlink():
        raise DataError(f"{records_dump}: missing; the package's GAN and QA records are read from it, "
                        "so rebuild the package (`dvc repro package`)")
    where = f"{package_dir / SQL_DIR / 'sqlite.sql'}"
    engine = load_sqlite_dump(records_dump)
    try:
        problems = dump_vs_metadata(engine, metadata, where)
        if problems:
            raise DataError(f"{'; '.join(problems)}; the dump and {METADATA_PARQUET} disagree, "
                            "so rebuild the package (`dvc repro package`)")
        db = database_from_dump(engine, metadata, where)
    finally:
        engine.dispose()
    if out is not None:
        write_dump(db, dialect, out)
        return
    for piece in render(db, dialect):
        sys.stdout.buffer.write(piece.encode("utf-8"))
    sys.stdout.buffer.flush()
