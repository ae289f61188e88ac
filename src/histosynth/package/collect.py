"""The package's rows, planned from the real (ingest) and synthetic (generate) manifests.

Nothing is read here but the two manifests: each row says where its image comes from
(``source_file``) and where it goes (``file_path``); ``width``, ``height`` and the hashed
``md5`` are filled in when the files are placed (histosynth.package.assemble).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from histosynth.errors import DataError
from histosynth.fsutil import unique_safe_names
from histosynth.manifest import class_names_of, read_manifest
from histosynth.package.schema import (
    COLUMNS, CURATION_COLUMNS, EDIT_COLUMN, GENERATOR_COLUMNS, GROUP_COLUMN, IMAGES_DIR,
)

log = logging.getLogger(__name__)

SOURCE_FILE = "source_file"  # absolute path of the workspace file a row's image comes from
# An origin that names a place on the machine that made it: /..., ~..., C:\... or \\server\...
LOCAL_PATH = re.compile(r"^(?:/|~|[A-Za-z]:[\\/]|\\\\)")
# The generate manifest's names for the package's generator columns.
SYNTHETIC_COLUMNS = {"checkpoint_md5": "generator_run", "arch": "arch", "seed": "seed", "latent_index": "latent_index"}


def plan_rows(real_dir: Path, synthetic_dir: Path, real_splits: Sequence[str]) -> pd.DataFrame:
    """Every packaged image in package order (label, real before synthetic, id), with its
    ``source_file`` and the manifest's ``md5``; ``width`` and ``height`` are left at 0."""
    real_dir, synthetic_dir = Path(real_dir).resolve(), Path(synthetic_dir).resolve()
    real, synthetic = read_manifest(real_dir), read_manifest(synthetic_dir)
    class_names = _shared_class_names(real, synthetic, real_dir, synthetic_dir)
    folders = unique_safe_names(class_names)

    train_ids = real.loc[real["split"] == "train", ["id", "label"]]
    real = real[real["split"].isin(real_splits)]
    missing = _missing_columns(synthetic, SYNTHETIC_COLUMNS)
    if missing:
        raise DataError(f"{synthetic_dir}: the manifest lacks {', '.join(missing)}; it was not written by "
                        "`generate` (rerun `dvc repro generate`)")
    _check_edit_sources(synthetic, train_ids, synthetic_dir, real_dir)
    parts = [_rows(real, real_dir, folders), _rows(synthetic.rename(columns=SYNTHETIC_COLUMNS), synthetic_dir, folders)]
    rows = pd.concat(parts, ignore_index=True)
    _require_unique_ids(rows)
    rows = rows.sort_values(["label", "source", "id"], kind="stable", ignore_index=True)
    return rows[[*COLUMNS, SOURCE_FILE]]


def _shared_class_names(real: pd.DataFrame, synthetic: pd.DataFrame, real_dir: Path, synthetic_dir: Path) -> list[str]:
    real_names, synthetic_names = class_names_of(real), class_names_of(synthetic)
    if real_names != synthetic_names:
        raise DataError(f"{synthetic_dir} has classes {synthetic_names} but {real_dir} has {real_names}; "
                        "retrain and regenerate from the current real data (`dvc repro`)")
    return real_names


def _missing_columns(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [column for column in columns if column not in df.columns]


def _rows(manifest: pd.DataFrame, folder: Path, class_folders: list[str]) -> pd.DataFrame:
    rows = manifest[["id", "class_name", "label", "source", "split", "md5", "origin"]].copy()
    rows["origin"] = public_origins(rows["origin"], folder)
    rows["class_folder"] = [class_folders[label] for label in manifest["label"]]
    rows["file_path"] = IMAGES_DIR + "/" + rows["class_folder"] + "/" + rows["id"] + ".png"
    rows["width"] = rows["height"] = 0
    for column in (*GENERATOR_COLUMNS, EDIT_COLUMN, *CURATION_COLUMNS):  # absent from real manifests (and some sets)
        rows[column] = manifest[column] if column in manifest.columns else None
    # real images: their group (a manifest from before groups: each image its own); synthetic: none
    real = manifest["source"] == "real"
    rows[GROUP_COLUMN] = (manifest[GROUP_COLUMN] if GROUP_COLUMN in manifest.columns else manifest["id"]).where(real)
    rows = rows.astype({"width": "int64", "height": "int64", "seed": "Int64", "latent_index": "Int64",
                        "generator_run": "str", "arch": "str", GROUP_COLUMN: "str", EDIT_COLUMN: "str",
                        "confidence": "float64", "realism": "float64", "copy_ratio": "float64", "curation": "str"})
    rows[SOURCE_FILE] = [str(folder / path) for path in manifest["path"]]
    return rows


def _check_edit_sources(synthetic: pd.DataFrame, train: pd.DataFrame, synthetic_dir: Path, real_dir: Path) -> None:
    """Every edit names a real train image of its own class (whether or not the train split is packaged)."""
    if EDIT_COLUMN not in synthetic:
        return
    edits = synthetic[synthetic[EDIT_COLUMN].notna()]
    label_of = dict(zip(train["id"], train["label"]))
    wrong = edits[[label_of.get(source) != label for source, label in zip(edits[EDIT_COLUMN], edits["label"])]]
    if len(wrong):
        raise DataError(f"{synthetic_dir}: {len(wrong)} edit(s) name no real train image of their class in "
                        f"{real_dir} (e.g. {wrong['id'].iloc[0]!r} edit_of {wrong[EDIT_COLUMN].iloc[0]!r}); "
                        "regenerate them from this data (`dvc repro generate`)")


def public_origins(origins: pd.Series, folder: Path) -> pd.Series:
    """The origins as a package may publish them: ingest records a path inside the source folder, but
    an older ingest recorded the absolute path (folder names are often patient or slide identifiers,
    and the path says whose machine it was): such an origin becomes a hash of it."""
    local = origins.str.match(LOCAL_PATH)
    if local.any():
        log.warning("%s: %d image(s) record an absolute source path as origin (an older ingest); the package "
                    "stores a hash of it instead (rerun ingest to record paths inside the source folder)",
                    folder, int(local.sum()))
        origins = origins.mask(local, origins.map(lambda o: f"sha256:{hashlib.sha256(o.encode()).hexdigest()[:16]}"))
    return origins


def _require_unique_ids(rows: pd.DataFrame) -> None:
    repeated = rows["id"][rows["id"].duplicated()]
    if len(repeated):
        raise DataError(f"image id {repeated.iloc[0]!r} occurs in both the real and the synthetic manifest "
                        f"({len(repeated)} ids do); ids name the package's files and must be unique")
