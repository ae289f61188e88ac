"""Real-image edits by the diffusion model (SDEdit) on BloodMNIST at 100 real images per class: a sweep of
the edit strength t0, judged on real val only.

    nice -n 10 .venv/bin/python bench/studies/diffusion_edits.py --work /tmp/hs-edits   # train, then sweep
    nice -n 10 .venv/bin/python bench/studies/diffusion_edits.py --work /tmp/hs-edits --train-only
    .venv/bin/python bench/studies/diffusion_edits.py --quick                           # smoke run, writes nothing

The pipeline's own functions in a work folder (resumable: a finished model is resumed, not retrained;
every recipe's result is written to bench/results/diffusion_edits.json as soon as it is measured and
a rerun skips the recipes already recorded for the same model): ingest (``medmnist:bloodmnist`` from
/work/shared/data, 28 px, 100 train images per class drawn with data.seed 0, the full val split), augment
(200 per class), the feature net and its cross-fitted classifiers, then the diffusion model (``ddpm`` at
its CPU recipe, EMA 0.999, batch 32, on the real train images, one torch thread: ``EPOCHS`` epochs, about
23 CPU-minutes, 2 wall-hours on the shared 2-core machine). Per recipe (``RECIPES``: strength and
guidance): generate ``n_per_class x overgenerate`` edit candidates per class (``generate.mode: edit``),
curate, QA (report only), and a synthetic-only classifier (the QA feature net's recipe, a fixed number
of steps) scored on real val, beside the same classifier trained on the real train images. The same for
samples drawn from noise (``generate.mode: sample``), the baseline an edit has to beat (2-4 CPU-minutes
a recipe). The test split is never read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info, save_results

from histosynth.augment import augment
from histosynth.classifier.crossfit import (
    ensemble_probabilities, load_fold_models, load_out_of_fold, unseen_source_probabilities,
)
from histosynth.classifier.embed import predict_proba
from histosynth.classifier.featurenet import train_featurenet
from histosynth.classifier.train import train_classifier
from histosynth.config import Params, load_params, params_from_mapping
from histosynth.config.classifier import ClassifierRecipe
from histosynth.curate import curate
from histosynth.data.ingest import ingest
from histosynth.dataset import ImageSet, load_image_set
from histosynth.entry import setup_logging
from histosynth.generate import generate
from histosynth.generators import train
from histosynth.generators.training.checkpoint import checkpoint_hash
from histosynth.manifest import EDIT_OF, class_names_of, read_manifest
from histosynth.qa.report import json_ready
from histosynth.qa.run import run_qa

DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
REAL_PER_CLASS = 100
# ~18-25 training images/s for ddpm at 28 px on one thread of the shared machine: 60 epochs of 800
# images (1,500 optimiser steps at batch 32) are about 35-45 minutes.
EPOCHS = 60
BATCH_SIZE = 32
EMA = 0.999


def study_params(quick: bool, **generate: Any) -> Params:
    """params.yaml's recipe with the study's data and the diffusion model's training budget."""
    recipe = load_params(Path(__file__).resolve().parents[2] / "params.yaml").model_dump(mode="json")
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
    return params_from_mapping(recipe, source="bench/studies/diffusion_edits.py")


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


# (edit strength, guidance) per recipe, in the order they run (the most informative first: the sweep
# may be stopped and resumed). Strength = t0 as a fraction of the noise schedule, None = samples from
# noise (the baseline); guidance None = the model's recorded default (2). Guidance 1 (the conditional
# model alone) and strength 0.1 were added after the first pass failed the colour gate in most classes
# (the edits' backgrounds drift towards yellow-green, which guidance 2 pushes).
# keep_colour (each edit given its source's channel moments or histograms) was added after that, for the
# same drift, as the third element.
RECIPES = ((0.2, None), (0.35, None), (0.5, None), (0.1, None), (0.2, None, "moments"), (0.2, None, "histogram"),
           (0.35, None, "histogram"), (0.35, None, "moments"), (0.5, None, "histogram"), (0.2, 1.0), (0.35, 1.0),
           (None, None), (0.7, None))
# As many edits ship per class as there are real train images, from two candidates per real image (a first
# pass that shipped 50 covered only half the real images: bench/results/diffusion_edits_50_per_class.md).
N_PER_CLASS, OVERGENERATE = 100, 2
# The synthetic-only and real-only classifiers: the QA feature net's recipe, the same number of
# optimiser steps for both (CAS: Ravuri & Vinyals 2019), no early stopping on val (val scores them).
CLASSIFIER_STEPS = 500
RESULTS = RESULTS_DIR / "diffusion_edits.json"


def recipe_name(strength: float | None, guidance: float | None = None, keep_colour: str = "none") -> str:
    name = "sample" if strength is None else f"edit_{strength:g}"
    name = name if guidance is None else f"{name}_guidance_{guidance:g}"
    return {"none": name, "moments": f"{name}_keep_colour"}.get(keep_colour, f"{name}_keep_{keep_colour}")


def recipe_params(quick: bool, strength: float | None, guidance: float | None = None,
                  keep_colour: str = "none") -> Params:
    generate = {"n_per_class": 4 if quick else N_PER_CLASS, "overgenerate": OVERGENERATE,
                "mode": "sample" if strength is None else "edit",
                "edit": {"strength": strength or 0.5, "keep_colour": keep_colour},
                "diffusion": {"guidance": guidance}}
    return study_params(quick, **generate)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cross_fitted_agreement(work: Path, folder: Path) -> dict[str, Any]:
    """Share of images the cross-fitted classifiers put in their intended class (edits: the model that
    never saw the source), overall and per class."""
    models = load_fold_models(work / "featurenet")
    manifest = read_manifest(folder)
    images = load_image_set(folder)
    if EDIT_OF in manifest:
        probabilities = unseen_source_probabilities(models, load_out_of_fold(work / "featurenet"), images.images,
                                                    manifest[EDIT_OF].to_numpy(str))
    else:
        probabilities = ensemble_probabilities(models, images.images)
    hits = probabilities.argmax(1) == images.labels
    return {"all": round(float(hits.mean()), 4),
            "per_class": {name: round(float(hits[images.labels == c].mean()), 4)
                          for c, name in enumerate(images.class_names)}}


def val_accuracy(train_set: ImageSet, val: ImageSet, recipe: ClassifierRecipe) -> float:
    """A classifier trained on ``train_set`` for CLASSIFIER_STEPS steps, scored on real val."""
    steps_per_epoch = math.ceil(len(train_set) / recipe.batch_size)
    trained = train_classifier(train_set, None, recipe.model_copy(update={
        "epochs": math.ceil(CLASSIFIER_STEPS / steps_per_epoch), "patience": 0}))
    return round(float((predict_proba(trained.model, val.images).argmax(1) == val.labels).mean()), 4)


def class_summary(figures: dict[str, Any]) -> dict[str, Any]:
    keys = ("fid", "fid_real_floor", "coverage", "coverage_real_floor", "label_agreement",
            "label_agreement_real_floor", "kl", "kl_real_floor", "memorised_share_pixel", "memorised_share_feature",
            "source_copy_share_pixel", "source_copy_share_feature")
    return {**{k: figures.get(k) for k in keys},
            "failed_gates": sorted(g for g, v in figures["gates"].items() if v["passed"] is False)}


def run_recipe(work: Path, strength: float | None, guidance: float | None, keep_colour: str, quick: bool,
               revision: dict[str, Any]) -> dict[str, Any]:
    params = recipe_params(quick, strength, guidance, keep_colour)
    name = recipe_name(strength, guidance, keep_colour)
    folder = work / name
    load, started, cpu = [round(x, 2) for x in os.getloadavg()], time.perf_counter(), cpu_seconds()
    seconds: dict[str, float] = {}
    candidates = params.generate.model_copy(update={"n_per_class": params.generate.candidates_per_class})
    made = folder / "candidates" / "manifest.parquet"
    n_classes = len(class_names_of(read_manifest(work / "real")))
    if not made.is_file() or len(read_manifest(made)) != candidates.n_per_class * n_classes:
        _, seconds["generate"] = timed(lambda: generate(candidates, work / "ddpm", folder / "candidates", work / "real"))
    agreement = cross_fitted_agreement(work, folder / "candidates")
    _, seconds["curate"] = timed(lambda: curate(params.curate, params.generate.n_per_class, folder / "candidates",
                                                work / "real", work / "augmented", work / "featurenet",
                                                folder / "synthetic", folder / "curate_report"))
    qa, seconds["qa"] = timed(lambda: run_qa(params.qa, work / "real", folder / "synthetic", work / "featurenet",
                                             folder / "qa", work / "augmented"))
    recipe = params.qa.featurenet
    val = load_image_set(work / "real", "val")
    synthetic_only, seconds["classifier"] = timed(lambda: val_accuracy(load_image_set(folder / "synthetic"), val,
                                                                       recipe))
    classes = qa.metrics["classes"]
    curated = json.loads((folder / "curate_report" / "metrics.json").read_text())["classes"]
    failing = sorted({g for c in classes.values() for g, v in c["gates"].items() if v["passed"] is False})
    result = {
        "recipe": name, "mode": params.generate.mode, "strength": strength, "keep_colour": keep_colour,
        "revision": revision,
        "date": machine_info()["date"], "load_average_start": load,
        "sampling": {"sampler": "ddim", "steps": 25, "guidance": 2.0 if guidance is None else guidance},
        "candidates_per_class": params.generate.candidates_per_class, "shipped_per_class": params.generate.n_per_class,
        "cross_fitted_label_agreement_candidates": agreement,
        "curation": {c: {k: v[k] for k in ("passed_confidence", "passed_realism", "near_copies", "kept", "filled")}
                     for c, v in curated.items()},
        "qa_classes_passed": sum(c["passed"] for c in classes.values()), "qa_classes": len(classes),
        "classes_failing_gate": {g: sum(g in class_summary(c)["failed_gates"] for c in classes.values())
                                 for g in failing},
        "overall_fid": qa.metrics["fid"],
        "classes": {n: class_summary(c) for n, c in classes.items()},
        "synthetic_only_val_accuracy": synthetic_only,
        "seconds": seconds, "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(cpu_seconds() - cpu, 1), "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"{name}: QA classes passed {result['qa_classes_passed']}/{result['qa_classes']}, cross-fitted label "
          f"agreement {agreement['all']}, synthetic-only val accuracy {synthetic_only}, {result['cpu_s']} CPU s",
          flush=True)
    return result


def fmt(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def mean_ratio(result: dict[str, Any], key: str) -> float | None:
    ratios = [c[key] / c[f"{key}_real_floor"] for c in result["classes"].values()
              if c.get(key) is not None and c.get(f"{key}_real_floor")]
    return sum(ratios) / len(ratios) if ratios else None


def markdown(results: dict[str, Any]) -> str:
    m, t = results["machine"], results["training"]
    lines = [
        "# Real-image edits (SDEdit) by the diffusion model: strength sweep on BloodMNIST, real val only",
        "",
        f"Command: `{results['command']}`. Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, shared with "
        "other engineers' jobs (load averages below; `nice -n 10`, one torch thread for training). Data: "
        f"{results['data']}. The test split is never read.",
        "",
        f"Diffusion model: ddpm at its CPU recipe, EMA {EMA}, batch {BATCH_SIZE}, {t['epochs']} epochs on the 800 "
        f"real train images ({t['optimizer_steps']} optimiser steps), {t['cpu_minutes']} CPU-minutes of training "
        f"over {t['wall_minutes']} wall-minutes (final denoising loss {fmt(t['final_loss'])}). Each recipe: "
        f"{N_PER_CLASS * OVERGENERATE} candidates per class, curated to {N_PER_CLASS} (params.yaml's curation), "
        "QA with params.yaml's gates, and a classifier trained on the shipped synthetic images only "
        f"({CLASSIFIER_STEPS} steps) scored on real val; real only (800 real train images, same steps): "
        f"{fmt(results.get('real_only_val_accuracy'))}.",
        "",
        "| recipe | cross-fitted label agreement (candidates) | QA classes passing all gates | gates failed (classes) "
        "| overall FID (floor) | mean FID / floor | mean coverage / floor | memorised px / feat (max class) "
        "| edits copying their source (px, max class) | synthetic-only val accuracy | CPU s | load start / end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["recipes"].values():
        c = r["classes"].values()
        failing = ", ".join(f"{g} ({n})" for g, n in r["classes_failing_gate"].items()) or "none"
        mem = f"{fmt(max(x['memorised_share_pixel'] for x in c))} / {fmt(max(x['memorised_share_feature'] for x in c))}"
        source = max((x["source_copy_share_pixel"] or 0) for x in c) if r["mode"] == "edit" else None
        lines.append(
            f"| {r['recipe']} | {fmt(r['cross_fitted_label_agreement_candidates']['all'])} "
            f"| {r['qa_classes_passed']} / {r['qa_classes']} | {failing} "
            f"| {fmt(r['overall_fid'].get('fid'))} ({fmt(r['overall_fid'].get('fid_real_floor'))}) "
            f"| {fmt(mean_ratio(r, 'fid'))} | {fmt(mean_ratio(r, 'coverage'))} | {mem} | {fmt(source)} "
            f"| {fmt(r['synthetic_only_val_accuracy'])} | {r['cpu_s']} | {r['load_average_start'][0]} / "
            f"{r['load_average_end'][0]} |")
    if results.get("chosen"):
        lines += ["", f"Chosen default: {results['chosen']}"]
    return "\n".join(lines) + "\n"


CHOICE_RULE = ("among the edit recipes whose edits never copy their source (memorisation gates passed in every "
               "class), the most classes passing every QA gate, then the best synthetic-only val accuracy, then the "
               "best cross-fitted label agreement of the candidates (all measured on real train/val only)")


def choose(results: dict[str, Any]) -> str | None:
    """The recipe CHOICE_RULE picks; marks every recipe's ``chosen``."""
    def memorisation_ok(r: dict[str, Any]) -> bool:
        return not any(g.startswith("memorisation") for g in r["classes_failing_gate"])

    candidates = [r for r in results["recipes"].values() if r["mode"] == "edit" and memorisation_ok(r)]
    best = max(candidates, default=None, key=lambda r: (r["qa_classes_passed"], r["synthetic_only_val_accuracy"],
                                                        r["cross_fitted_label_agreement_candidates"]["all"]))
    for r in results["recipes"].values():
        r["chosen"] = best is not None and r["recipe"] == best["recipe"]
    return None if best is None else best["recipe"]


def training_summary(params: Params, trained: dict[str, Any]) -> dict[str, Any]:
    metrics, runs = trained["metrics"], trained["runs"]
    return {"epochs": params.gan.epochs,
            "optimizer_steps": params.gan.epochs * math.ceil(REAL_PER_CLASS * 8 / BATCH_SIZE),
            "cpu_minutes": round(sum(r["cpu_s"] for r in runs) / 60, 1) if runs else None,
            "wall_minutes": round(sum(r["wall_s"] for r in runs) / 60, 1) if runs else None,
            "final_loss": metrics.get("denoising_loss"), "runs": runs}


def sweep(params: Params, work: Path, revision: dict[str, Any], prepared: dict[str, Any], trained: dict[str, Any],
          quick: bool) -> None:
    checkpoint = checkpoint_hash(work / "ddpm")
    results: dict[str, Any] = {
        "command": "nice -n 10 .venv/bin/python bench/studies/diffusion_edits.py --work /tmp/hs-edits",
        "machine": machine_info(), "checkpoint_md5": checkpoint,
        "data": (f"{params.data.source} {params.data.image_size} px, {params.data.max_per_class} train images per "
                 "class (data.seed 0), the full val split"),
        "featurenet": prepared["featurenet"], "training": training_summary(params, trained), "recipes": {}}
    if not quick and RESULTS.is_file():
        recorded = json.loads(RESULTS.read_text())
        if recorded.get("checkpoint_md5") == checkpoint:  # resume: keep what this model already measured
            results["recipes"] = recorded.get("recipes", {})
            results["real_only_val_accuracy"] = recorded.get("real_only_val_accuracy")
    if results.get("real_only_val_accuracy") is None:
        results["real_only_val_accuracy"] = val_accuracy(load_image_set(work / "real", "train"),
                                                         load_image_set(work / "real", "val"), params.qa.featurenet)
    for strength, guidance, *keep in (RECIPES[:1] + RECIPES[5:6] if quick else RECIPES):
        keep_colour = keep[0] if keep else "none"
        name = recipe_name(strength, guidance, keep_colour)
        if name in results["recipes"]:
            continue
        results["recipes"][name] = json_ready(run_recipe(work, strength, guidance, keep_colour, quick, revision))
        record(results, quick)
    record(results, quick)
    print(markdown(results))


def record(results: dict[str, Any], quick: bool) -> None:
    """Mark the chosen recipe and write the results (not for a quick run)."""
    chosen = choose(results)
    results["chosen"] = f"{chosen} ({CHOICE_RULE})" if chosen else None
    if not quick:
        save_results("diffusion_edits", markdown(results), results)


if __name__ == "__main__":
    main()
