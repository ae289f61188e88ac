"""The package's ``metadata.csv`` / ``metadata.parquet`` / ``metadata.jsonl``: one row per image,
validated with pandera.

All three hold the same rows in the same order (sorted by label, real before synthetic, then
id). The CSV is for people and spreadsheets, the Parquet and JSON Lines files keep the exact
text and the Parquet file the column types; readers here parse the CSV with explicit types so
that a class called ``NA`` or ``null`` stays a string, and undo its formula neutralisation (a
class ``=1+1`` is ``'=1+1`` in the CSV, see histosynth.neutralise). The JSON Lines file is for
Hugging Face ``datasets``' imagefolder builder: each row starts with ``file_name``
(= ``file_path``), the column that builder reads an image from.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow.parquet as pq
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from histosynth import schema_errors
from histosynth.errors import DataError
from histosynth.fsutil import open_plain_file
from histosynth.manifest import SPLITS
from histosynth.neutralise import csv_frame, restore_csv_frame

# The package's layout (DESIGN.md "Package layout").
METADATA_CSV = "metadata.csv"
METADATA_PARQUET = "metadata.parquet"
METADATA_JSONL = "metadata.jsonl"
JSONL_FILE_COLUMN = "file_name"  # Hugging Face imagefolder's name for the image's path
CROISSANT_NAME = "croissant.json"
IMAGES_DIR = "images"
CARD_NAME = "README.md"
SQL_DIR = "sql"
SOURCES = ("real", "synthetic")
# Filled for synthetic images only (how the GAN made them); null for real ones.
GENERATOR_COLUMNS = ("generator_run", "arch", "seed", "latent_index")
# Filled for real images only: the patient, slide or original image (ingest's manifest), never in two splits.
GROUP_COLUMN = "group"
# Filled for curated synthetic images (histosynth.curate): the scores that decided they ship, and
# whether they passed every test ("kept") or filled up a class short of passers ("filled").
CURATION_COLUMNS = ("confidence", "realism", "copy_ratio", "curation")
# Filled for synthetic images made by editing a real image (generate.mode: edit): the id of that
# real train image; empty for samples drawn from noise and for real images.
EDIT_COLUMN = "edit_of"
NULLABLE_COLUMNS = (GROUP_COLUMN, *GENERATOR_COLUMNS, EDIT_COLUMN, *CURATION_COLUMNS)

COLUMN_TYPES: dict[str, str] = {
    "id": "str",
    "file_path": "str",
    "class_name": "str",
    "class_folder": "str",
    "label": "int64",
    "source": "str",
    "split": "str",
    "group": "str",
    "md5": "str",
    "width": "int64",
    "height": "int64",
    "origin": "str",
    "generator_run": "str",
    "arch": "str",
    "seed": "Int64",
    "latent_index": "Int64",
    "edit_of": "str",
    "confidence": "float64",
    "realism": "float64",
    "copy_ratio": "float64",
    "curation": "str",
}
COLUMNS = tuple(COLUMN_TYPES)

# What package metadata from elsewhere may cost, checked before its rows are read. A real
# metadata.parquet takes about 44 bytes per row on disk and 140 unpacked (100k rows, measured),
# about 350 in memory; the CSV and JSON Lines files about 250 and 600 bytes per row.
MAX_METADATA_ROWS = 5_000_000
MIN_BYTES_PER_ROW = 8
MAX_UNPACKED_BYTES_PER_ROW = 4096
MAX_METADATA_BYTES = MAX_METADATA_ROWS * 256
MAX_METADATA_TEXT_BYTES = MAX_METADATA_ROWS * 1024
REFETCH = "; fetch the package again or rebuild it (`dvc repro package`)"


def _one_per_label(column: str) -> pa.Check:
    return pa.Check(lambda df: df.groupby("label")[column].nunique().le(1).all(),
                    error=f"each label must map to exactly one {column}")


def _paths_follow_layout(df: pd.DataFrame) -> pd.Series:
    return df["file_path"] == IMAGES_DIR + "/" + df["class_folder"] + "/" + df["id"] + ".png"


def _generator_columns_match_source(df: pd.DataFrame) -> pd.Series:
    filled = df[list(GENERATOR_COLUMNS)].notna()
    synthetic = df["source"] == "synthetic"
    return filled.all(axis=1).where(synthetic, ~filled.any(axis=1))


METADATA_SCHEMA = pa.DataFrameSchema(
    {
        "id": pa.Column(str, pa.Check.str_matches(r"^[^/\\\s]+$"), unique=True),
        "file_path": pa.Column(str, unique=True),
        "class_name": pa.Column(str, pa.Check.str_length(min_value=1)),
        "class_folder": pa.Column(str, pa.Check.str_matches(r"^[a-z0-9_]+$")),
        "label": pa.Column("int64", pa.Check.ge(0)),
        "source": pa.Column(str, pa.Check.isin(SOURCES)),
        "split": pa.Column(str, pa.Check.isin(SPLITS)),
        "group": pa.Column(str, pa.Check.str_length(min_value=1), nullable=True),
        "md5": pa.Column(str, pa.Check.str_matches(r"^[0-9a-f]{32}$")),
        "width": pa.Column("int64", pa.Check.ge(1)),
        "height": pa.Column("int64", pa.Check.ge(1)),
        "origin": pa.Column(str),
        "generator_run": pa.Column(str, pa.Check.str_matches(r"^[0-9a-f]{32}$"), nullable=True),
        "arch": pa.Column(str, nullable=True),
        "seed": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        "latent_index": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        "edit_of": pa.Column(str, pa.Check.str_length(min_value=1), nullable=True),
        "confidence": pa.Column("float64", pa.Check.in_range(0.0, 1.0), nullable=True),
        "realism": pa.Column("float64", pa.Check.ge(0.0), nullable=True),
        "copy_ratio": pa.Column("float64", pa.Check.ge(0.0), nullable=True),
        "curation": pa.Column(str, pa.Check.isin(("kept", "filled")), nullable=True),
    },
    checks=[
        _one_per_label("class_name"),
        _one_per_label("class_folder"),
        pa.Check(lambda df: df.groupby("class_folder")["label"].nunique().le(1).all(),
                 error="each class_folder must hold one label"),
        pa.Check(_paths_follow_layout, error="file_path must be images/<class_folder>/<id>.png"),
        pa.Check(_generator_columns_match_source,
                 error=f"{', '.join(GENERATOR_COLUMNS)} are set for synthetic rows and empty for real ones"),
        pa.Check(lambda df: (df["split"] == "train").where(df["source"] == "synthetic", True),
                 error="synthetic images belong to the train split"),
        pa.Check(lambda df: df["group"].notna() == (df["source"] == "real"),
                 error="group is set for real rows and empty for synthetic ones"),
        pa.Check(lambda df: df.groupby("group")["split"].nunique().le(1).all(), error="a group must lie in one split"),
        pa.Check(lambda df: ~(df[list(CURATION_COLUMNS)].notna().any(axis=1) & (df["source"] == "real")),
                 error=f"{', '.join(CURATION_COLUMNS)} are empty for real rows"),
        pa.Check(lambda df: ~(df[EDIT_COLUMN].notna() & (df["source"] == "real")),
                 error=f"{EDIT_COLUMN} is empty for real rows"),
    ],
    strict=True,
    ordered=True,
)


def validate_metadata(df: pd.DataFrame, where: str = "metadata") -> pd.DataFrame:
    """``df`` with the schema's column types, or a DataError that says what is wrong."""
    try:
        return METADATA_SCHEMA.validate(df, lazy=True)
    except (SchemaErrors, SchemaError) as err:
        raise DataError(f"{where}: metadata does not match the schema: {schema_errors.describe(err)}") from None


def metadata_csv_bytes(df: pd.DataFrame) -> bytes:
    """The CSV for people: text cells a spreadsheet would run as a formula get a leading ``'``
    (histosynth.neutralise); :func:`read_metadata_csv` takes it off again."""
    return csv_frame(df).to_csv(index=False, lineterminator="\n").encode("utf-8")


def metadata_parquet_bytes(df: pd.DataFrame) -> bytes:
    """Parquet bytes that depend on the rows only (same rows, same library versions -> same bytes)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    return buf.getvalue()


def _check_parquet_footer(file: BinaryIO, path: Path) -> None:
    """Refuse, from the footer alone, metadata that would unpack into far more than a package holds."""
    size = os.fstat(file.fileno()).st_size
    if size > MAX_METADATA_BYTES:
        raise DataError(f"{path}: {size:,} bytes, more than the {MAX_METADATA_BYTES:,} that {MAX_METADATA_ROWS:,} "
                        f"images' metadata take; refused unread{REFETCH}")
    footer = pq.ParquetFile(file).metadata
    rows, columns = footer.num_rows, footer.num_columns
    unpacked = sum(footer.row_group(g).column(c).total_uncompressed_size
                   for g in range(footer.num_row_groups) for c in range(columns))
    problem = None
    if rows > MAX_METADATA_ROWS:
        problem = f"declares {rows:,} rows, more than the {MAX_METADATA_ROWS:,} images a package may hold"
    elif columns > len(COLUMNS):
        problem = f"declares {columns:,} columns; package metadata has {len(COLUMNS)}"
    elif rows * MIN_BYTES_PER_ROW > size:
        problem = (f"declares {rows:,} rows in {size:,} bytes ({size / rows:.1f} bytes per row; real metadata takes "
                   "about 40: each row holds an id and an MD5 of its own)")
    elif unpacked > MAX_UNPACKED_BYTES_PER_ROW * rows + (1 << 20):
        problem = (f"unpacks to {unpacked:,} bytes for {rows:,} rows; real metadata takes about 140 bytes per row")
    if problem:
        raise DataError(f"{path}: its Parquet footer {problem}; refused unread{REFETCH}")


def _plain(value: object) -> object:
    """A JSON value: None for a missing one (NaN, pd.NA), Python int/float/str otherwise."""
    return None if pd.isna(value) else value


def metadata_jsonl_bytes(df: pd.DataFrame) -> bytes:
    """One JSON object per row: ``file_name`` then every column; missing values are null.

    Floats are written as Python's repr (the shortest text that reads back to the same float)."""
    columns = {column: [_plain(v) for v in df[column].tolist()] for column in df.columns}
    lines = []
    for i, file_path in enumerate(columns["file_path"]):
        row = {JSONL_FILE_COLUMN: file_path, **{column: values[i] for column, values in columns.items()}}
        lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    return "".join(lines).encode("utf-8")


def read_metadata_jsonl(path: Path) -> pd.DataFrame:
    """The JSON Lines metadata with the schema's column types (not validated: a reader compares it with
    validated rows); a row whose ``file_name`` is not its ``file_path`` is a DataError."""
    try:
        with open_plain_file(path) as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_METADATA_TEXT_BYTES:
                raise DataError(f"{path}: {size:,} bytes, more than the {MAX_METADATA_TEXT_BYTES:,} that "
                                f"{MAX_METADATA_ROWS:,} images' metadata take; refused unread{REFETCH}")
            data = file.read()
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines()]
        if not all(isinstance(row, dict) for row in rows):
            raise ValueError("a line is not a JSON object")
        df = pd.DataFrame.from_records(rows, columns=[JSONL_FILE_COLUMN, *COLUMNS])
        named = df.pop(JSONL_FILE_COLUMN)
        df = df.astype(COLUMN_TYPES)
    except (OSError, ValueError, TypeError, RecursionError) as err:
        raise DataError(f"{path}: not a readable JSON Lines metadata file ({err})".replace("\n", " ")) from None
    if not (named.astype("str") == df["file_path"]).all():
        raise DataError(f"{path}: {JSONL_FILE_COLUMN} differs from file_path in some rows")
    return df


def read_metadata_parquet(path: Path) -> pd.DataFrame:
    """The Parquet metadata of a package, validated; it must be a plain file (no link, FIFO or device)
    whose footer declares no more rows and bytes than a package holds (checked before reading the rows)."""
    try:
        with open_plain_file(path) as file:
            _check_parquet_footer(file, path)
            file.seek(0)
            df = pd.read_parquet(file)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(err).split())})") from None
    return validate_metadata(df, where=str(path))


def read_metadata_csv(path: Path, validate: bool = True) -> pd.DataFrame:
    """The CSV with the schema's types; only the nullable columns treat an empty field as missing.

    ``validate`` false skips the schema check, for a reader that compares it with validated rows."""
    try:
        with open_plain_file(path) as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_METADATA_TEXT_BYTES:
                raise DataError(f"{path}: {size:,} bytes, more than the {MAX_METADATA_TEXT_BYTES:,} that "
                                f"{MAX_METADATA_ROWS:,} images' metadata take; refused unread{REFETCH}")
            df = pd.read_csv(file, dtype=COLUMN_TYPES, keep_default_na=False,
                             na_values={column: [""] for column in NULLABLE_COLUMNS}, encoding="utf-8")
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: not a readable metadata CSV ({err})".replace("\n", " ")) from None
    df = restore_csv_frame(df)
    return validate_metadata(df, where=str(path)) if validate else df
