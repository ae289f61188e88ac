"""Image manifests: one Parquet row per image file, validated with pandera.

Every image folder the pipeline writes (real, augmented, synthetic) has a
``manifest.parquet`` beside its class folders. ``path`` is relative to the manifest's
folder, POSIX-style, so a folder can be moved or fetched with ``dvc get`` and still resolve.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from histosynth import schema_errors
from histosynth.errors import DataError
from histosynth.fsutil import atomic_write_bytes
from histosynth.paths import MANIFEST_NAME
from histosynth.plain_files import open_plain_file

SPLITS = ("train", "val", "test")
# The `source` column: where an image comes from.
SOURCE_REAL = "real"  # ingest: the data source's images
SOURCE_ORIGINAL = "original"  # augment: a real train image, copied
SOURCE_AFFINE = "affine"  # augment: an affine child of one
SOURCE_SYNTHETIC = "synthetic"  # generate: made by a generator
# Synthetic images made by editing a real image (generate.mode: edit): the real train image's id
# and the edit strength. Absent from sampled sets.
EDIT_OF = "edit_of"
EDIT_STRENGTH = "edit_strength"
# Samples made with generate.colour_match: the real train image whose colours they took.
COLOUR_REFERENCE = "colour_reference"

MANIFEST_SCHEMA = pa.DataFrameSchema(
    {
        "id": pa.Column(str, unique=True),
        "path": pa.Column(str, pa.Check.str_matches(r"^[^/].*\.png$"), unique=True),
        "class_name": pa.Column(str),
        "label": pa.Column("int64", pa.Check.ge(0)),
        "split": pa.Column(str, pa.Check.isin(SPLITS)),
        "source": pa.Column(str),
        "md5": pa.Column(str, pa.Check.str_matches(r"^[0-9a-f]{32}$")),
        # Where the image came from: source file and region, npz index, or the parent image id.
        "origin": pa.Column(str),
        # Real images (ingest): the patient, slide or original image the image belongs to (its id
        # where the source has no groups), and the first train image it duplicates ("" = none).
        "group": pa.Column(str, pa.Check.str_length(min_value=1), required=False),
        "duplicate_of": pa.Column(str, required=False),
        EDIT_OF: pa.Column(str, pa.Check.str_length(min_value=1), nullable=True, required=False),
        EDIT_STRENGTH: pa.Column(float, pa.Check.in_range(0.0, 1.0, include_min=False), nullable=True,
                                 required=False),
    },
    checks=[
        pa.Check(lambda df: df.groupby("label")["class_name"].nunique().le(1).all(),
                 error="each label must map to exactly one class_name"),
        pa.Check(lambda df: "group" not in df or df.groupby("group")["split"].nunique().le(1).all(),
                 error="a group must lie in one split"),
    ],
    strict=False,  # stages may add columns (e.g. augmentation ops, latent seed)
    ordered=False,
)


def validate_manifest(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    try:
        return MANIFEST_SCHEMA.validate(df, lazy=True)
    except (SchemaErrors, SchemaError) as err:
        raise DataError(f"{where}: manifest does not match the schema: {schema_errors.describe(err)}") from None


def write_manifest(df: pd.DataFrame, folder: Path | str) -> Path:
    """Validate and write ``folder/manifest.parquet`` (deterministic bytes for the same rows)."""
    df = validate_manifest(df.reset_index(drop=True), where=str(folder))
    path = Path(folder) / MANIFEST_NAME
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_manifest(folder: Path | str) -> pd.DataFrame:
    folder = Path(folder)
    path = folder / MANIFEST_NAME if folder.is_dir() or not folder.suffix else folder
    if not path.is_file():
        raise DataError(f"{path}: manifest not found; run the stage that writes it first (e.g. `dvc repro`)")
    try:
        with open_plain_file(path, follow_symlinks=True) as file:  # (DVC's cache may link it) never a FIFO
            df = pd.read_parquet(file)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable manifest ({' '.join(str(err).split())}); rerun the stage that "
                        "writes it (`dvc repro`)") from None
    return validate_manifest(df, where=str(path))


def class_names_of(df: pd.DataFrame) -> list[str]:
    """Class names ordered by label (labels must run 0..K-1)."""
    pairs = df[["label", "class_name"]].drop_duplicates().sort_values("label")
    labels = pairs["label"].tolist()
    if labels != list(range(len(labels))):
        raise DataError(f"manifest labels must be 0..K-1 without gaps, found {labels}")
    return pairs["class_name"].tolist()
