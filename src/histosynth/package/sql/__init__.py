"""The package database (the thesis' BCADCID tables, extended) and its SQL dumps.

    db = build_database(metadata, gan_record, qa_metrics, networks=(generator_doc, discriminator_doc),
                        gate_of_metric={"kl": "colour_kl", ...}, name="histosynth-demo", version="1.0.0")
    write_dumps(db, package_dir / "sql")          # sql/mysql.sql, sql/postgresql.sql, sql/sqlite.sql
    problems = check_dumps(package_dir, metadata) # [] while the dumps hold the metadata

It imports neither QA nor the generators: :mod:`histosynth.package.database` feeds it their part.
"""

from histosynth.package.sql.check import check_dumps
from histosynth.package.sql.dump import DIALECTS, write_dumps
from histosynth.package.sql.export import export_sql
from histosynth.package.sql.records import PackageDatabase, build_database

__all__ = ["DIALECTS", "PackageDatabase", "build_database", "check_dumps", "export_sql", "write_dumps"]
