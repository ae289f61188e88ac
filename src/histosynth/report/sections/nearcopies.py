"""The near-copy gallery: per class, the synthetic images that sit closest to one training image
(the lowest distance ratio, the figure the memorisation gate judges) beside that training image.

Reads reports/qa/memorisation.csv by its columns, not a fixed list: every space with a
``<space>_ratio`` and a ``nearest_train_id_<space>`` column is shown (pixels and features today),
with ``<space>_distance`` when present. The file is read in chunks keeping only the closest rows,
so memory does not grow with the number of synthetic images. Image ids are resolved through the
manifests of data/synthetic, data/real and data/augmented (an affine child of a training image
can be the nearest one), reading only the rows of the ids shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from histosynth import paths
from histosynth.errors import DataError
from histosynth.manifest import MANIFEST_NAME
from histosynth.neutralise import restore_csv_frame
from histosynth.report.grids import pair
from histosynth.report.inputs import Missing
from histosynth.report.schemas import QaMetrics

PAIRS_PER_CLASS = 4
CHUNK_ROWS = 100_000
KEY_COLUMNS = ["class", "source", "id"]
SPACE_TITLES = {"pixel": "in pixels", "feature": "in the feature classifier's view"}


@dataclass(frozen=True)
class NearCopy:
    image: bytes  # the synthetic image (left) beside its nearest training image (right)
    ratio: float
    distance: float | None
    synthetic_id: str
    nearest_id: str
    nearest_kind: str  # what the nearest image is: a real training image, or an affine child of one
    flagged: bool | None  # at most the class's near-copy threshold; None: no threshold in the QA metrics


@dataclass(frozen=True)
class SpaceGallery:
    space: str
    title: str
    threshold: float | None
    pairs: list[NearCopy]


@dataclass(frozen=True)
class ClassGallery:
    name: str
    spaces: list[SpaceGallery]


@dataclass(frozen=True)
class _Space:
    name: str
    ratio: str
    nearest: str
    distance: str | None


def near_copy_section(root: Path, class_names: list[str], qa: QaMetrics | None) -> list[ClassGallery] | Missing:
    csv = root / paths.QA_REPORT_DIR / "memorisation.csv"
    if not csv.is_file():
        return Missing("qa")
    spaces = _spaces(csv)
    closest = _closest(csv, spaces)
    manifests = {name: root / folder / MANIFEST_NAME for name, folder in
                 (("synthetic", paths.SYNTHETIC_DIR), ("real", paths.REAL_DIR), ("augmented", paths.AUGMENTED_DIR))}
    synthetic = _lookup(manifests["synthetic"], closest["id"])
    if synthetic is None:
        return Missing("generate")
    nearest_ids = pd.concat([closest[space.nearest] for space in spaces]).dropna()
    real, augmented = _lookup(manifests["real"], nearest_ids), _lookup(manifests["augmented"], nearest_ids)
    if real is None:
        return Missing("ingest")
    training = real.assign(folder=str(root / paths.REAL_DIR), kind="real training image")
    if augmented is not None and len(augmented):
        training = pd.concat([training, _affine_children(augmented, root / paths.AUGMENTED_DIR)])
    training = training[~training.index.duplicated()]  # an original in both folders is the same image
    unresolved = sorted(set(nearest_ids) - set(training.index))
    if unresolved:
        if augmented is None:
            return Missing("augment")
        return Missing("qa", reason=f"nearest training image {unresolved[0]} (of {csv}) is in neither "
                                    f"{paths.REAL_DIR} nor {paths.AUGMENTED_DIR}: QA ran on other images; rerun "
                                    "`dvc repro qa`")
    missing_synthetic = sorted(set(closest["id"]) - set(synthetic.index))
    if missing_synthetic:
        return Missing("qa", reason=f"synthetic image {missing_synthetic[0]} (of {csv}) is not in "
                                    f"{paths.SYNTHETIC_DIR}: QA ran on other images; rerun `dvc repro qa`")
    order = list(class_names) + [c for c in pd.unique(closest["class"]) if c not in class_names]
    galleries = []
    for name in order:
        rows = closest[closest["class"] == name]
        if rows.empty:
            continue
        verdict = None if qa is None else qa.classes.get(name)
        galleries.append(ClassGallery(name, [
            _gallery(space, rows, verdict.figure(f"near_copy_ratio_threshold_{space.name}") if verdict else None,
                     root / paths.SYNTHETIC_DIR, synthetic, training) for space in spaces]))
    return galleries


def _spaces(csv: Path) -> list[_Space]:
    columns = list(_read(csv, nrows=0).columns)
    absent = [c for c in KEY_COLUMNS if c not in columns]
    spaces = [_Space(m.group(1), column, f"nearest_train_id_{m.group(1)}",
                     f"{m.group(1)}_distance" if f"{m.group(1)}_distance" in columns else None)
              for column in columns if (m := re.fullmatch(r"(.+)_ratio", column))
              and f"nearest_train_id_{m.group(1)}" in columns]
    if absent or not spaces:
        raise DataError(f"{csv}: expected the columns {', '.join(KEY_COLUMNS)} and, per distance space, "
                        f"<space>_ratio with nearest_train_id_<space> (found {', '.join(columns)}); rebuild it with "
                        "`dvc repro qa`")
    return spaces


def _closest(csv: Path, spaces: list[_Space]) -> pd.DataFrame:
    """The synthetic rows that are among the PAIRS_PER_CLASS lowest ratios of their class in any space."""
    wanted = KEY_COLUMNS + [c for s in spaces for c in (s.ratio, s.nearest, s.distance) if c]
    kept: dict[str, pd.DataFrame] = {}
    as_text = {column: str for column in ["id", "class"] + [s.nearest for s in spaces]}  # ids stay ids, even "0012"
    for chunk in _read(csv, usecols=wanted, chunksize=CHUNK_ROWS, dtype=as_text):
        chunk = restore_csv_frame(chunk)
        chunk = chunk[chunk["source"] == "synthetic"]
        for space in spaces:
            for column in (space.ratio, space.distance):
                if column and len(chunk) and not pd.api.types.is_numeric_dtype(chunk[column]):
                    raise DataError(f"{csv}: column {column} must hold numbers, found e.g. {chunk[column].iloc[0]!r}")
            candidates = chunk.dropna(subset=[space.ratio, space.nearest])
            if space.name in kept:
                candidates = pd.concat([kept[space.name], candidates])
            kept[space.name] = (candidates.sort_values(["class", space.ratio, "id"], kind="stable")
                                .groupby("class", sort=False).head(PAIRS_PER_CLASS))
    if not kept:  # a header without rows
        return pd.DataFrame(columns=wanted)
    return pd.concat(kept.values()).drop_duplicates("id").reset_index(drop=True)


def _read(csv: Path, **options: object) -> pd.DataFrame:
    try:
        return pd.read_csv(csv, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{csv}: unreadable table: {reason}; rebuild it with `dvc repro qa`") from None


def _lookup(manifest: Path, ids: Iterable[str]) -> pd.DataFrame | None:
    """Rows of ``manifest`` (indexed by id) for ``ids`` only; None when the manifest does not exist."""
    if not manifest.is_file():
        return None
    wanted = sorted(set(ids))
    if not wanted:
        return pd.DataFrame(columns=["path", "source", "origin"]).rename_axis("id")
    try:
        rows = pd.read_parquet(manifest, columns=["id", "path", "source", "origin"], filters=[("id", "in", wanted)])
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{manifest}: unreadable manifest ({err}); rebuild it with the stage that writes it") from None
    return rows.set_index("id")


def _affine_children(augmented: pd.DataFrame, folder: Path) -> pd.DataFrame:
    kind = [f"affine child of {origin}" if source == "affine" else "real training image"
            for source, origin in zip(augmented["source"], augmented["origin"])]
    return augmented.assign(folder=str(folder), kind=kind)


def _gallery(space: _Space, rows: pd.DataFrame, threshold: float | None, synthetic_dir: Path,
             synthetic: pd.DataFrame, training: pd.DataFrame) -> SpaceGallery:
    rows = rows.dropna(subset=[space.ratio, space.nearest]).sort_values([space.ratio, "id"], kind="stable")
    pairs = []
    for values in rows.head(PAIRS_PER_CLASS).to_dict("records"):
        ratio, nearest, synthetic_id = float(values[space.ratio]), str(values[space.nearest]), str(values["id"])
        found = training.loc[nearest]
        pairs.append(NearCopy(
            image=pair(synthetic_dir / synthetic.loc[synthetic_id, "path"], Path(found["folder"]) / found["path"]),
            ratio=ratio,
            distance=float(values[space.distance]) if space.distance else None,
            synthetic_id=synthetic_id,
            nearest_id=nearest,
            nearest_kind=found["kind"],
            flagged=None if threshold is None else ratio <= threshold,
        ))
    return SpaceGallery(space.name, SPACE_TITLES.get(space.name, f"in {space.name} space"), threshold, pairs)
