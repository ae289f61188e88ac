"""Choosing the strong baseline's stain jitter on real val (never test): BloodMNIST, 100 real images per class.

    .venv/bin/python bench/studies/strong_baseline.py           # about 20 min on 2 idle cores
    .venv/bin/python bench/studies/strong_baseline.py --quick   # tiny data: smoke run, writes nothing

The `strong` arm (TrivialAugmentWide + HED stain jitter, histosynth.benchmark.strong) with a few
``benchmark.strong`` settings, and real_only, each trained with classifier seeds 0-2 for the
benchmark's 1,500 steps; as in bench/studies/recipes.py the real val split is cut into two fixed
halves, one picking each training's best step, the other scoring it. Only ingest runs (no generator):
the strong arm uses no synthetic image. Results: bench/results/strong_baseline.json and .md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes.py: the val halves
from machine import code_revision, machine_info, save_results
from recipes import DATA_ROOT, val_accuracies, val_halves

from histosynth.benchmark.arms import single_stream
from histosynth.benchmark.strong import StrongAugment
from histosynth.config import params_from_mapping
from histosynth.dataset import ImageSet, load_image_set
from histosynth.entry import setup_logging
from histosynth.manifest import read_manifest
from histosynth.pipeline import run_pipeline

VARIANTS = {"real_only": None, "trivial_augment_only": (0.0, 0.0), "hed_light_shift_0.01": (0.05, 0.01),
            "hed_light_0.05": (0.05, 0.05), "hed_scale_0.2": (0.2, 0.01)}


def split(real: Path, name: str) -> ImageSet:
    images, manifest = load_image_set(real), read_manifest(real)
    keep = (manifest["split"] == name).to_numpy()
    return ImageSet(images.images[keep], images.labels[keep], images.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    setup_logging()
    params = params_from_mapping({"data": {"source": "medmnist:bloodmnist", "root": str(DATA_ROOT), "image_size": 28,
                                           "max_per_class": 10 if args.quick else 100,
                                           "max_eval_per_class": 20 if args.quick else 0},
                                  "benchmark": {"steps": 20 if args.quick else 1500,
                                                "eval_every": 10 if args.quick else 100}})
    load_start = [round(x, 2) for x in os.getloadavg()]
    scores, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="strong-baseline-") as tmp:
        run_pipeline(params, Path(tmp), stages=["ingest"])
        real = Path(tmp) / "data" / "real"
        train, (select, score) = split(real, "train"), val_halves(split(real, "val"))
        for name, jitter in VARIANTS.items():
            transform = None if jitter is None else StrongAugment(*jitter)
            started = time.perf_counter()
            scores[name] = val_accuracies(single_stream(train, params.benchmark, transform), select, score, params)
            seconds[name] = round(time.perf_counter() - started, 1)
            print(name, scores[name], seconds[name], "s", flush=True)
    lines = ["Machine: " + machine_info()["cpu"] + f"; code {code_revision()['commit']}; load average at start "
             f"{load_start}, end {[round(x, 2) for x in os.getloadavg()]}.", "",
             "Command: `.venv/bin/python bench/studies/strong_baseline.py`. BloodMNIST 28 px, 100 real train images "
             "per class; val_select picks each training's best step, val_score (the other half of val) scores it; "
             "classifier seeds 0-2, 1,500 steps; `benchmark.strong` = (hed_scale, hed_shift); TrivialAugmentWide "
             "in every strong variant. The test split is not read.", "",
             "| variant | hed_scale, hed_shift | val_score accuracy (mean ± std over seeds) | wall s (2 at once) |",
             "|---|---|---|---|"]
    for name, values in scores.items():
        lines.append(f"| {name} | {VARIANTS[name] or '-'} | {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} | "
                     f"{seconds[name]} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if not args.quick:
        save_results("strong_baseline", table, {"variants": {k: list(v) if v else None for k, v in VARIANTS.items()},
                                                 "val_score_accuracy": scores, "seconds": seconds,
                                                 "machine": machine_info(), "code": code_revision(),
                                                 "load_average_start": load_start})


if __name__ == "__main__":
    main()
