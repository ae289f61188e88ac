"""A package from elsewhere (issue 20): `verify` as strict as `md5sum -c`, metadata refused from its
Parquet footer before its rows are unpacked, and a dump that cannot grow SQLite's temp storage."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_run import invoke, one_error
from histosynth.entry import EXIT_INPUT, EXIT_VERIFY_FINDINGS
from histosynth.errors import DataError
from histosynth.package import load_package
from histosynth.package.schema import metadata_parquet_bytes
from test_hostile_package import restamp_top_md5sums
from test_verify import built, package  # noqa: F401 (fixtures: a small package, a private copy to damage)


def test_a_file_listed_twice_in_md5sums_fails_verify(package: Path) -> None:
    sums = package / "images" / "na" / "MD5SUMS"
    first = sums.read_text().splitlines()[0]
    md5, name = first.split("  ", 1)
    wrong = f"{'0' * 32}  {name}"
    sums.write_text(f"{wrong}\n{sums.read_text()}")  # listed twice: first wrong, then right
    code, output = invoke("verify", str(package))
    assert code == EXIT_VERIFY_FINDINGS
    assert f"problem: images/na/MD5SUMS line 2: lists {name} a second time (first at line 1); each file must be " \
           "listed once" in output.splitlines()
    assert "modified: images/na/MD5SUMS" in output.splitlines()
    sums.write_text(f"{first}\n{sums.read_text().split(chr(10), 1)[1]}")  # twice, both right: still an error
    code, output = invoke("verify", str(package))
    assert code == EXIT_VERIFY_FINDINGS and "lists " + name + " a second time" in output


def test_a_top_level_file_listed_twice_fails_verify(package: Path) -> None:
    sums = package / "MD5SUMS"
    sums.write_text(sums.read_text() + sums.read_text().splitlines()[0] + "\n")
    code, output = invoke("verify", str(package))
    assert code == EXIT_VERIFY_FINDINGS and "a second time" in output


def metadata_bomb(rows: int) -> bytes:
    """Valid-looking metadata of ``rows`` copies of one row (sequential ids): a few MB that unpack to GBs."""
    ids = pd.Series(np.arange(rows)).map("r{:07d}".format)
    frame = pd.DataFrame({
        "id": ids, "file_path": "images/na/" + ids + ".png", "class_name": "NA", "class_folder": "na", "label": 0,
        "source": "real", "split": "train", "group": "g", "md5": "0" * 32, "width": 28, "height": 28,
        "origin": "x", "generator_run": None, "arch": None, "seed": pd.array([None] * rows, "Int64"),
        "latent_index": pd.array([None] * rows, "Int64"), "confidence": np.nan, "realism": np.nan,
        "copy_ratio": np.nan, "curation": None})
    return metadata_parquet_bytes(frame)


@pytest.mark.timeout(120)
def test_metadata_that_unpacks_to_millions_of_rows_is_refused_from_its_footer(package: Path) -> None:
    data = metadata_bomb(1_000_000)
    assert len(data) < 2_000_000  # about 1.4 bytes per row; a real package's take about 40
    (package / "metadata.parquet").write_bytes(data)
    started = time.perf_counter()
    refused = r"its Parquet footer declares 1,000,000 rows in [0-9,]+ bytes \(1\.\d bytes per row; real metadata " \
              r"takes about 40.*refused unread"
    with pytest.raises(DataError, match=refused):
        load_package(package)
    code, output = invoke("verify", str(package))
    assert code == EXIT_VERIFY_FINDINGS and "refused unread" in output
    code, output = invoke("export-sql", str(package), "--dialect", "sqlite")
    assert code == EXIT_INPUT and "refused unread" in one_error(output)
    assert time.perf_counter() - started < 30  # unpacking them took minutes and 2.5 GB


def test_metadata_with_a_huge_cell_or_too_many_columns_is_refused_unread(package: Path) -> None:
    metadata = load_package(package).metadata
    huge = metadata.copy()
    huge.loc[0, "origin"] = "a" * 50_000_000  # compresses to almost nothing
    (package / "metadata.parquet").write_bytes(metadata_parquet_bytes(huge))
    with pytest.raises(DataError, match=r"its Parquet footer unpacks to [0-9,]+ bytes for \d+ rows"):
        load_package(package)
    wide = pd.concat([metadata, pd.DataFrame({f"extra{i}": 0 for i in range(100)}, index=metadata.index)], axis=1)
    (package / "metadata.parquet").write_bytes(metadata_parquet_bytes(wide))
    columns = len(metadata.columns)
    with pytest.raises(DataError, match=rf"its Parquet footer declares {columns + 100} columns; package metadata has "
                                        rf"{columns}"):
        load_package(package)


# The dump of issue 20: a temp table outside the main database's page budget, filled by zeroblob();
# and the same values made by a function into a main table.
TEMP_FILLERS = {
    "temp_table": "CREATE TEMP TABLE t(x);\n" + "INSERT INTO t VALUES (zeroblob(60000000));\n" * 20,
    "temp_schema": "CREATE TABLE temp.t(x);\nINSERT INTO temp.t VALUES (1);\n",
    "function": "CREATE TABLE filler(x);\n" + "INSERT INTO filler VALUES (zeroblob(60000000));\n" * 20,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("filler", sorted(TEMP_FILLERS))
def test_a_dump_cannot_fill_temp_storage(package: Path, filler: str) -> None:
    with open(package / "sql" / "sqlite.sql", "a", encoding="utf-8") as dump:
        dump.write(TEMP_FILLERS[filler])
    restamp_top_md5sums(package)
    code, output = invoke("export-sql", str(package), "--dialect", "mysql")
    assert code == EXIT_INPUT
    assert "creates views, triggers or temp tables, calls functions" in one_error(output)
    code, output = invoke("verify", "--deep", str(package))
    assert code == EXIT_VERIFY_FINDINGS and "calls functions" in output and "(refused)" in output


def test_a_croissant_file_nested_without_end_is_a_problem_not_a_traceback(package: Path) -> None:
    (package / "croissant.json").write_text("[" * 100_000 + "]" * 100_000)
    code, output = invoke("verify", str(package))
    assert code == EXIT_VERIFY_FINDINGS
    assert "problem: croissant.json: not a readable Croissant file (nested too deeply)" in output.splitlines()
