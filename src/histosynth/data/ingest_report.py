"""``reports/ingest/``: what the duplicate check found, for people and for ``dvc metrics``/``dvc plots``.

- ``duplicates.json`` (DVC metrics): images checked and dropped per split; per split pair
  (``train-test``: test images that duplicate a train image; ``val-val``: val images that
  duplicate an earlier val image) how many images, how many of them have an exact copy there,
  how many a copy of another class; the number of groups in the manifest.
- ``duplicates.tsv``: one line per duplicate image and earlier split: the first image it
  duplicates there (and, on a line of its own, the first one of another class), with class
  names, kind (exact or near), distance, orientation and whether it was dropped.
- ``duplicates.png`` (DVC plot): up to 16 of those pairs, the earlier image left, conflicting
  labels first, then pairs across splits, each captioned.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from histosynth.data.duplicate_check import DuplicateCheck, Example, Finding
from histosynth.fsutil import atomic_output_dir
from histosynth.images import encode_png
from histosynth.manifest import SPLITS
from histosynth.neutralise import csv_frame

log = logging.getLogger(__name__)

METRICS_NAME = "duplicates.json"
PAIRS_NAME = "duplicates.tsv"
EXAMPLES_NAME = "duplicates.png"
PAIR_COLUMNS = ["later_split", "later_id", "later_class", "earlier_split", "earlier_id", "earlier_class", "kind",
                "distance", "transform", "conflicting_labels", "dropped"]
SPLIT_PAIRS = [(a, b) for i, a in enumerate(SPLITS) for b in SPLITS[i:]]
TILE_PX = 84  # images are enlarged by a whole factor to at least about this size
CAPTION_PX = 620
PAD_PX = 6
LOGGED_CONFLICTS = 10


def write_ingest_report(check: DuplicateCheck, groups: int, folder: Path | str, long_tail: dict | None = None) -> dict:
    """Write the three files into ``folder`` (replaced as a whole); return the metrics (with what
    ``data.long_tail`` kept, when it is on)."""
    metrics = duplicate_metrics(check, groups) | ({"long_tail": long_tail} if long_tail else {})
    with atomic_output_dir(folder) as tmp:
        (tmp / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        csv_frame(pairs_table(check.findings)).to_csv(tmp / PAIRS_NAME, sep="\t", index=False, lineterminator="\n")
        (tmp / EXAMPLES_NAME).write_bytes(examples_png(check.examples))
    return metrics


def duplicate_metrics(check: DuplicateCheck, groups: int) -> dict:
    pairs = {}
    for earlier, later in SPLIT_PAIRS:
        counts = check.counts.get((earlier, later))
        pairs[f"{earlier}-{later}"] = {"images": counts.images if counts else 0,
                                       "exact": counts.exact if counts else 0,
                                       "conflicting_labels": counts.conflicting_labels if counts else 0}
    return {
        "action": check.action,
        "near_max_distance": check.max_distance,
        "checked": {split: check.checked.get(split, 0) for split in SPLITS},
        "dropped": {split: check.dropped.get(split, 0) for split in SPLITS},
        "pairs": pairs,
        "groups": groups,
    }


def pairs_table(findings: list[Finding]) -> pd.DataFrame:
    rows = [(f.later.split, f.later.id, f.later.class_name, f.earlier.split, f.earlier.id, f.earlier.class_name,
             f.kind, f.distance, f.transform, f.conflict, f.dropped)
            for f in sorted(findings, key=lambda f: (f.later.order, f.earlier.order))]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def log_findings(check: DuplicateCheck) -> None:
    """One warning per split pair with duplicates, and one per conflicting label (the first few)."""
    for (earlier, later), counts in sorted(check.counts.items(), key=lambda item: SPLIT_PAIRS.index(item[0])):
        what = f"an earlier {later} image" if earlier == later else f"a {earlier} image"
        log.warning("%d %s image(s) duplicate %s (%d exact, %d near; %d with another class's label)%s", counts.images,
                    later, what, counts.exact, counts.images - counts.exact, counts.conflicting_labels,
                    "; dropped" if check.action == "drop" and later != "train" else "")
    conflicts = [f for f in check.findings if f.conflict]
    for f in conflicts[:LOGGED_CONFLICTS]:
        log.warning("conflicting labels: %s %s (%s) is a%s copy of %s %s (%s)", f.later.split, f.later.id,
                    f.later.class_name, "n exact" if f.exact else " near", f.earlier.split, f.earlier.id,
                    f.earlier.class_name)
    if len(conflicts) > LOGGED_CONFLICTS:
        log.warning("... and %d more conflicting labels (all in reports/ingest/%s)", len(conflicts) - LOGGED_CONFLICTS,
                    PAIRS_NAME)


def examples_png(examples: list[Example]) -> bytes:
    """The example pairs, one per row: earlier image, later image, caption; a note when there are none."""
    font = ImageFont.load_default()
    if not examples:
        canvas = Image.new("RGB", (CAPTION_PX, 2 * PAD_PX + 12), "white")
        ImageDraw.Draw(canvas).text((PAD_PX, PAD_PX), "no duplicates found", fill="black", font=font)
        return encode_png(np.asarray(canvas))
    size = examples[0].later.shape[0]
    factor = max(1, -(-TILE_PX // size))
    tile = size * factor
    row_height = tile + PAD_PX
    canvas = Image.new("RGB", (2 * tile + 3 * PAD_PX + CAPTION_PX, PAD_PX + row_height * len(examples)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, example in enumerate(examples):
        top = PAD_PX + row * row_height
        for column, pixels in enumerate((example.earlier, example.later)):
            enlarged = pixels.repeat(factor, axis=0).repeat(factor, axis=1)
            canvas.paste(Image.fromarray(enlarged), (PAD_PX + column * (tile + PAD_PX), top))
        left = 2 * (tile + PAD_PX) + PAD_PX
        for line, text in enumerate(_caption(example.finding)):
            draw.text((left, top + 2 + 14 * line), text, fill="firebrick" if line == 2 and example.finding.conflict
                      else "black", font=font)
    return encode_png(np.asarray(canvas))


def _caption(f: Finding) -> list[str]:
    how = "identical pixels" if f.exact else f"near copy, distance {f.distance:.3f}" + (
        "" if f.transform == "none" else f", earlier image {f.transform}")
    labels = f"labels differ: {f.earlier.class_name} / {f.later.class_name}" if f.conflict else \
        f"class {f.later.class_name}"
    return [f"left:  {f.earlier.split} {f.earlier.id}", f"right: {f.later.split} {f.later.id}"
            + (" (dropped)" if f.dropped else ""), labels, how]
