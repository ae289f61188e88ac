"""Real-image edits by the diffusion model (SDEdit) on BloodMNIST at 100 real images per class: a sweep of
the edit strength t0, judged on real val only.

    nice -n 10 .venv/bin/python bench/diffusion_edits.py --work /tmp/hs-edits          # train, then sweep
    nice -n 10 .venv/bin/python bench/diffusion_edits.py --work /tmp/hs-edits --train-only
    .venv/bin/python bench/diffusion_edits.py --quick                                    # smoke run, writes nothing

The pipeline's own functions in a work folder (resumable: a finished model is resumed, not retrained;
every strength's result is written to bench/results/diffusion_edits.json as soon as it is measured and
a rerun skips the strengths already recorded for the same model): ingest (``medmnist:bloodmnist`` from
/work/shared/data, 28 px, 100 train images per class drawn with data.seed 0, the full val split), augment
(200 per class), the feature net and its cross-fitted classifiers, then the diffusion model (``ddpm`` at
its CPU recipe, EMA 0.999, batch 32, on the real train images, one torch thread: ``EPOCHS`` epochs, about
30-40 CPU-minutes on the shared 2-core machine). Per strength: generate ``n_per_class x overgenerate``
edit candidates per class (``generate.mode: edit``), curate, QA (report only), and a synthetic-only
classifier (the benchmark's recipe) scored on real val. The same for samples drawn from noise
(``generate.mode: sample``), the baseline an edit has to beat. The test split is never read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import RESULTS_DIR, code_revision, machine_info

from histosynth.augment import augment
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import Params, load_params, params_from_mapping
from histosynth.data.ingest import ingest
from histosynth.entry import setup_logging
from histosynth.generators import train

DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
REAL_PER_CLASS = 100
# ~18-25 training images/s for ddpm at 28 px on one thread of the shared machine: 60 epochs of 800
# images (1,500 optimiser steps at batch 32) are about 35-45 minutes.
EPOCHS = 60
BATCH_SIZE = 32
EMA = 0.999


def study_params(quick: bool, **generate: Any) -> Params:
    """params.yaml's recipe with the study's data and the diffusion model's training budget."""
    recipe = load_params(Path(__file__).resolve().parents[1] / "params.yaml").model_dump(mode="json")
    recipe["data"] = {"source": "medmnist:bloodmnist", "root": str(DATA_ROOT), "image_size": 28,
                      "max_per_class": 20 if quick else REAL_PER_CLASS, "max_eval_per_class": 20 if quick else 0}
    recipe["augment"]["per_class"] = 200
    recipe["gan"].update(arch="ddpm", train_on="real", epochs=1 if quick else EPOCHS, batch_size=BATCH_SIZE,
                         ema=EMA, device="cpu", threads=1, checkpoint_every=5, probe={"every": 0, "max_images": 400})
    if quick:
        recipe["gan"]["width"] = 8
    recipe["generate"].update(device="cpu", **generate)
    recipe["qa"]["enforce"] = False
    if quick:
        recipe["qa"]["featurenet"].update(epochs=2, folds=2)
        recipe["benchmark"].update(steps=10, eval_every=5)
    return params_from_mapping(recipe, source="bench/diffusion_edits.py")


def timed(fn) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 1)


def prepare(params: Params, work: Path) -> dict[str, Any]:
    """Real data, augmented set and the feature net in ``work`` (deterministic; reused when present)."""
    record_file = work / "featurenet" / "record.json"
    seconds: dict[str, float] = {}
    if not record_file.is_file():
        _, seconds["ingest"] = timed(lambda: ingest(params.data, work / "real"))
        _, seconds["augment"] = timed(lambda: augment(params.augment, work / "real", work / "augmented",
                                                      work / "augment_preview"))
        _, seconds["featurenet"] = timed(lambda: train_featurenet(params.qa.featurenet, work / "real",
                                                                  work / "featurenet"))
    record = json.loads(record_file.read_text())
    return {"seconds": seconds, "featurenet": {"epochs_run": record["epochs_run"],
                                               "val_accuracy": record.get("val_accuracy")}}


def train_model(params: Params, work: Path) -> dict[str, Any]:
    """Train (or resume, or find finished) the diffusion model; its training metrics."""
    load = [round(x, 2) for x in os.getloadavg()]
    _, seconds = timed(lambda: train(params.gan, work / "real", work / "real", work / "ddpm", work / "train_report"))
    metrics = json.loads((work / "train_report" / "metrics.json").read_text())
    log_file = work / "training_runs.json"
    runs = json.loads(log_file.read_text()) if log_file.is_file() else []
    if metrics["resumed_from_epoch"] != params.gan.epochs:  # this call trained
        runs.append({"date": machine_info()["date"], "load_average_start": load, "wall_s": seconds,
                     "cpu_s": round(time.process_time(), 1), "resumed_from_epoch": metrics["resumed_from_epoch"],
                     "load_average_end": [round(x, 2) for x in os.getloadavg()]})
        log_file.write_text(json.dumps(runs, indent=2) + "\n")
    return {"metrics": metrics, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch: smoke run, writes nothing")
    parser.add_argument("--train-only", action="store_true", help="prepare and train the model, then stop")
    parser.add_argument("--work", type=Path, default=None, help="keep data, models and outputs here (resumable)")
    args = parser.parse_args()
    setup_logging()
    revision = code_revision()
    with (contextlib.nullcontext(args.work) if args.work
          else tempfile.TemporaryDirectory(prefix="histosynth-bench-edits-")) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        params = study_params(args.quick)
        prepared = prepare(params, work)
        trained = train_model(params, work)
        print(json.dumps({"revision": revision, "prepared": prepared, "training": trained["runs"]}, indent=2))
        if args.train_only:
            return
        sweep(params, work, revision, prepared, trained, args.quick)


def sweep(*args: Any) -> None:
    raise NotImplementedError("the sweep comes with generate.mode: edit")


if __name__ == "__main__":
    main()
