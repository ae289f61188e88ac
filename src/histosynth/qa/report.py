"""Writing reports/qa/: metrics.json, histogram overlay tables and the memorisation distance table.

- ``metrics.json``: ``{"passed", "classes": {<class>: {figures..., "gates": {...}}}, "fid": {...}, ...}``
  (NaN is written as null).
- ``histograms.csv``: class, channel, bin, real, synthetic (smoothed bin probabilities).
- ``histograms/<class folder>.csv``: one overlay table per class for ``dvc plots``: intensity
  (bin centre) and the six series <channel>_real, <channel>_synthetic.
- ``memorisation.csv``: per synthetic and held-out real (val + test) image, the distance to its nearest
  training image and the ratio of that to the distance to the second nearest, in pixel and feature
  space, and which training image is nearest (an edit's own source left out, and judged in the
  extra columns ``edit_of`` and ``*_source_ratio``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histosynth.fsutil import atomic_output_dir, atomic_write_text, unique_safe_names
from histosynth.neutralise import csv_frame
from histosynth.qa.metrics.colour_kl import CHANNELS

MEMORISATION_COLUMNS = ["class", "source", "id", "pixel_distance", "pixel_ratio", "nearest_train_id_pixel",
                        "feature_distance", "feature_ratio", "nearest_train_id_feature"]
# Added when the synthetic set holds edits of real images: the source, and the ratio of the distance
# to it to the distance to the nearest other training image (the columns above leave the source out).
EDIT_MEMORISATION_COLUMNS = ["edit_of", "pixel_source_ratio", "feature_source_ratio"]


def json_ready(obj: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def overlay_table(rows: pd.DataFrame, bins: int) -> pd.DataFrame:
    """One class's long histogram rows as columns intensity, <channel>_real, <channel>_synthetic."""
    table = pd.DataFrame({"intensity": (np.arange(bins) + 0.5) * 256 / bins})
    for channel in CHANNELS:
        part = rows[rows["channel"] == channel].sort_values("bin")
        table[f"{channel}_real"] = part["real"].to_numpy()
        table[f"{channel}_synthetic"] = part["synthetic"].to_numpy()
    return table


def write_report(report_dir: Path, metrics: dict[str, Any], histogram_rows: list[dict[str, Any]],
                 memorisation_rows: list[dict[str, Any]], class_names: tuple[str, ...], bins: int) -> None:
    with atomic_output_dir(report_dir) as tmp:
        atomic_write_text(tmp / "metrics.json", json.dumps(json_ready(metrics), indent=2) + "\n")
        histograms = pd.DataFrame(histogram_rows, columns=["class", "channel", "bin", "real", "synthetic"])
        csv_frame(histograms).to_csv(tmp / "histograms.csv", index=False, lineterminator="\n")
        (tmp / "histograms").mkdir()
        for name, folder in zip(class_names, unique_safe_names(class_names)):
            rows = histograms[histograms["class"] == name]
            if len(rows):
                csv_frame(overlay_table(rows, bins)).to_csv(tmp / "histograms" / f"{folder}.csv", index=False,
                                                 lineterminator="\n")
        edits = EDIT_MEMORISATION_COLUMNS if memorisation_rows and "edit_of" in memorisation_rows[0] else []
        distances = pd.DataFrame(memorisation_rows, columns=MEMORISATION_COLUMNS + edits)
        csv_frame(distances).to_csv(tmp / "memorisation.csv", index=False, lineterminator="\n")
