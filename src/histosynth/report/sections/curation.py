"""The curation section: per class, candidates that were kept beside candidates that were rejected,
with the tests each failed, from reports/curate/scores.csv and the candidates' manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from histosynth import paths
from histosynth.errors import DataError
from histosynth.manifest import MANIFEST_NAME, read_manifest
from histosynth.neutralise import restore_csv_frame
from histosynth.report.grids import sample_grid
from histosynth.report.inputs import Missing

EXAMPLES = 8
TESTS = (("passed_confidence", "not recognised as its class"), ("passed_realism", "off the real manifold"),
         ("passed_copy", "a near-copy"))


@dataclass(frozen=True)
class CurationClass:
    name: str
    candidates: int
    kept: int
    filled: int
    failed: str  # "3 not recognised as its class, 1 a near-copy": candidates failing each test ('' when off)
    kept_grid: bytes | None
    rejected_grid: bytes | None


def curation_section(root: Path, class_names: list[str]) -> list[CurationClass] | Missing:
    scores_file = root / paths.CURATE_REPORT_DIR / "scores.csv"
    candidates = root / paths.CANDIDATES_DIR
    if not scores_file.is_file() or not (candidates / MANIFEST_NAME).is_file():
        return Missing("curate")
    try:
        scores = restore_csv_frame(pd.read_csv(scores_file, keep_default_na=False,
                                               dtype={"id": str, "class_name": str, "curation": str}))
        enabled = json.loads((root / paths.CURATE_REPORT_DIR / "metrics.json").read_text()).get("enabled", True)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{scores_file}: not readable curation scores ({err}); rerun `dvc repro curate`") from None
    manifest = read_manifest(candidates).set_index("id")
    if not set(scores["id"]) <= set(manifest.index):
        return Missing("curate", reason=f"{scores_file} scores other candidates than {paths.CANDIDATES_DIR}: "
                                        "rerun `dvc repro curate`")
    out = []
    for name in class_names or list(pd.unique(scores["class_name"])):
        rows = scores[scores["class_name"] == name]
        if rows.empty:
            continue
        kept, rejected = rows[rows["curation"] != ""], rows[rows["curation"] == ""]
        failing = ", ".join(f"{n} {reason}" for column, reason in TESTS if (n := int((~rows[column].astype(bool)).sum())))
        out.append(CurationClass(
            name, len(rows), int((rows["curation"] == "kept").sum()), int((rows["curation"] == "filled").sum()),
            failing if enabled else "",
            _grid(candidates, manifest, kept.head(EXAMPLES)), _grid(candidates, manifest, rejected.head(EXAMPLES))))
    return out


def _grid(folder: Path, manifest: pd.DataFrame, rows: pd.DataFrame) -> bytes | None:
    if rows.empty:
        return None
    return sample_grid(folder, manifest.loc[rows["id"]].reset_index(), columns=EXAMPLES)
