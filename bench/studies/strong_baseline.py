"""Choosing the strong baseline's stain jitter on real val (never test): BloodMNIST, 100 real images per class.

    .venv/bin/python bench/studies/strong_baseline.py                      # about 30 min on 2 idle cores
    .venv/bin/python bench/studies/strong_baseline.py --only hed_only      # some variants (results are merged)
    .venv/bin/python bench/studies/strong_baseline.py --quick              # tiny data: smoke run, writes nothing

The `strong` arm (an automatic augmentation policy + HED stain jitter, histosynth.benchmark.strong)
with a few ``benchmark.strong`` settings, and real_only, each trained with classifier seeds 0-2 for the
benchmark's 1,500 steps; as in bench/studies/recipes.py the real val split is cut into two fixed
halves, one picking each training's best step, the other scoring it. Only ingest runs (no generator):
the strong arm uses no synthetic image. Results: bench/results/strong_baseline.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py
sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes.py: the val halves
from machine import RESULTS_DIR, code_revision, machine_info, save_results
from recipes import DATA_ROOT, val_accuracies, val_halves

from histosynth.benchmark.arms import single_stream
from histosynth.benchmark.strong import StrongAugment
from histosynth.config import params_from_mapping
from histosynth.dataset import ImageSet, load_image_set
from histosynth.entry import setup_logging
from histosynth.manifest import read_manifest
from histosynth.pipeline import run_pipeline

# name -> (policy, hed_scale, hed_shift) of benchmark.strong; None: real_only
VARIANTS = {"real_only": None, "trivial_augment_only": ("trivial_augment_wide", 0.0, 0.0),
            "hed_only": ("none", 0.05, 0.01), "rand_augment_hed": ("rand_augment", 0.05, 0.01),
            "trivial_augment_hed": ("trivial_augment_wide", 0.05, 0.01)}


def split(real: Path, name: str) -> ImageSet:
    images, manifest = load_image_set(real), read_manifest(real)
    keep = (manifest["split"] == name).to_numpy()
    return ImageSet(images.images[keep], images.labels[keep], images.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="these variants (results are merged)")
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
            if args.only and name not in args.only:
                continue
            transform = None if jitter is None else StrongAugment(jitter[1], jitter[2], jitter[0])
            started = time.perf_counter()
            scores[name] = val_accuracies(single_stream(train, params.benchmark, transform), select, score, params)
            seconds[name] = round(time.perf_counter() - started, 1)
            print(name, scores[name], seconds[name], "s", flush=True)
            if not args.quick:  # each variant as it comes: a long run killed half-way keeps what it measured
                save(scores, seconds, load_start)


def save(scores: dict[str, list[float]], seconds: dict[str, float], load_start: list[float]) -> None:
    path = RESULTS_DIR / "strong_baseline.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    scores = {**previous.get("val_score_accuracy", {}), **scores}
    seconds = {**previous.get("seconds", {}), **seconds}
    scores = {name: scores[name] for name in VARIANTS if name in scores}
    lines = ["Machine: " + machine_info()["cpu"] + f"; code {code_revision()['commit']}; load average at start "
             f"{load_start}, now {[round(x, 2) for x in os.getloadavg()]} (a shared, busy machine: wall times "
             "are not comparable across variants).", "",
             "Command: `.venv/bin/python bench/studies/strong_baseline.py`. BloodMNIST 28 px, 100 real train images "
             "per class; val_select picks each training's best step, val_score (the other half of val) scores it; "
             "classifier seeds 0-2, 1,500 steps; `benchmark.strong` = (policy, hed_scale, hed_shift); every arm "
             "also gets the benchmark's random flips and 90-degree turns. The test split is not read.", "",
             "| variant | policy, hed_scale, hed_shift | val_score accuracy (mean ± std over seeds) | wall s (2 at once) |",
             "|---|---|---|---|"]
    for name, values in scores.items():
        lines.append(f"| {name} | {VARIANTS[name] or '-'} | {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} | "
                     f"{seconds[name]} |")
    save_results("strong_baseline", "\n".join(lines) + "\n",
                 {"variants": {k: list(v) if v else None for k, v in VARIANTS.items()}, "val_score_accuracy": scores,
                  "seconds": seconds, "machine": machine_info(), "code": code_revision(),
                  "load_average_start": load_start})


if __name__ == "__main__":
    main()
