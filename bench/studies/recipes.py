"""Choosing the generator and mixing recipe on real val (never test): BloodMNIST, 100 real images per class.

    .venv/bin/python bench/studies/recipes.py gan            # GAN training variants: QA figures + val accuracy
    .venv/bin/python bench/studies/recipes.py mixing         # curation / ratio / weight / mode on the chosen GAN
    .venv/bin/python bench/studies/recipes.py gan --only dcgan_diffaug   # one variant (results are merged)
    .venv/bin/python bench/studies/recipes.py gan --quick    # tiny data: smoke run, writes nothing

Every variant runs the pipeline itself (histosynth.pipeline.run_pipeline) in a temporary folder:
ingest (``medmnist:bloodmnist`` from /work/shared/data, 28 px, 100 train images per class, the full
val split; the test split is not read), augment (200 per class), featurenet (with its cross-fitted
copies) once; then per variant, in a project folder of its own that reads those: train the GAN on
CPU (one torch thread), generate, curate, QA (report only). A GAN variant is judged on its raw
samples: one candidate per image and curation off, so the kept images are the generator's first
n per class.

The real val split is cut into two fixed halves, per class: ``val_select`` picks each
classifier's best step, ``val_score`` scores it. The score of a variant is the val_score accuracy
of the augmented arm (real + synthetic, mixed as the variant says) minus real_only's, over
classifier seeds, at the benchmark's default steps. Results: bench/results/recipes_<what>.json
and .md, with the machine, load and code revision of every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info, save_results

from histosynth import paths
from histosynth.benchmark.arms import single_stream, with_synthetic
from histosynth.benchmark.training import run_all
from histosynth.classifier.train import Schedule
from histosynth.config import Params, params_from_mapping
from histosynth.dataset import ImageSet, load_image_set
from histosynth.entry import setup_logging
from histosynth.pipeline import run_pipeline
from histosynth.qa.report import json_ready

DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
SEEDS = (0, 1, 2)
BASE = {
    "data": {"source": "medmnist:bloodmnist", "root": str(DATA_ROOT), "image_size": 28, "max_per_class": 100},
    "augment": {"per_class": 200},
    "gan": {"arch": "dcgan", "train_on": "real", "epochs": 300, "device": "cpu", "threads": 1,
            "probe": {"every": 300}},
    "generate": {"n_per_class": 400, "device": "cpu"},
    "qa": {"enforce": False},
    "benchmark": {},
}
# GAN training variants: overrides of BASE["gan"] (epochs chosen so every variant gets ~3,750 G steps
# at batch 64 unless the variant is about the budget).
GAN_VARIANTS: dict[str, dict[str, Any]] = {
    "dcgan_plain": {"ema": 0.999, "standing_stats": False, "diffaugment": []},
    "dcgan_standing": {"standing_stats": True, "diffaugment": []},
    "dcgan_diffaug": {"standing_stats": True, "diffaugment": ["color", "translation"]},
    "dcgan_augmented_set": {"train_on": "augmented", "standing_stats": True, "diffaugment": [], "epochs": 150},
    "dcgan_wide_diffaug": {"standing_stats": True, "diffaugment": ["color", "translation"], "width": 64},
}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def timed(fn) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 1)


def val_halves(val: ImageSet) -> tuple[ImageSet, ImageSet]:
    """Two fixed, class-stratified halves of the real val split (seed 0)."""
    rng = np.random.default_rng(0)
    select = np.zeros(len(val), bool)
    for c in range(len(val.class_names)):
        members = rng.permutation(np.flatnonzero(val.labels == c))
        select[members[: len(members) // 2]] = True
    return (ImageSet(val.images[select], val.labels[select], val.class_names),
            ImageSet(val.images[~select], val.labels[~select], val.class_names))


def val_accuracies(schedule: Schedule, select: ImageSet, score: ImageSet, params: Params) -> list[float]:
    """val_score accuracy of ``schedule`` trained with each of :data:`SEEDS` (best step picked on val_select),
    two trainings at once in worker processes."""
    bench = params.benchmark.model_copy(update={"seeds": list(SEEDS), "threads": 2})
    runs = run_all({"arm": schedule}, {"arm": 0}, bench, select, score.images)["arm"]
    return [float(np.mean(p.argmax(axis=1) == score.labels)) for p in runs.probabilities]


def prepare(work: Path, params: Params) -> dict[str, float]:
    """ingest, augment and featurenet in the project folder ``work``, which every variant reads."""
    seconds = {}
    for name in ("ingest", "augment", "featurenet"):
        _, seconds[name] = timed(lambda: run_pipeline(params, work, stages=[name]))
    return seconds


def raw_samples(params: Params) -> Params:
    """``params`` with one candidate per image and curation off: the generator's first n images per class ship."""
    return params.model_copy(update={"generate": params.generate.model_copy(update={"overgenerate": 1}),
                                     "curate": params.curate.model_copy(update={"enabled": False})})


def run_gan_variant(work: Path, name: str, params: Params, real_only: list[float]) -> dict[str, Any]:
    folder = work / name
    load_start = os.getloadavg()[0]
    seconds = {}
    for stage in ("train", "generate", "curate", "qa"):
        _, seconds[stage] = timed(lambda: run_pipeline(raw_samples(params), folder, stages=[stage], upstream=work))
    qa = json.loads((folder / paths.QA_REPORT_DIR / "metrics.json").read_text())
    select, score = val_halves(load_image_set(work / paths.REAL_DIR, "val"))
    real, synthetic = load_image_set(work / paths.REAL_DIR, "train"), load_image_set(folder / paths.SYNTHETIC_DIR)
    augmented = val_accuracies(with_synthetic(real, synthetic, params.benchmark), select, score, params)
    classes = qa["classes"]
    gains = np.array(augmented) - np.array(real_only)
    return {
        "gan": params.gan.model_dump(mode="json"),
        "train_metrics": json.loads((folder / paths.TRAIN_REPORT_DIR / "metrics.json").read_text()),
        "qa_passed": qa["passed"],
        "qa_failed_gates": {c: sorted(g for g, v in f["gates"].items() if v["passed"] is False) for c, f in classes.items()},
        "qa_figures": {c: {k: f.get(k) for k in ("kl", "fid", "fid_real_floor", "label_agreement",
                                                   "label_agreement_real_floor", "coverage", "coverage_real_floor",
                                                   "memorised_share_pixel")} for c, f in classes.items()},
        "overall_fid": qa["fid"],
        "val_accuracy": {"real_only": real_only, "augmented": augmented},
        "val_gain": {"mean": float(gains.mean()), "per_seed": gains.tolist()},
        "seconds": seconds,
        "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "code": code_revision(),
    }


def gan(only: list[str] | None, quick: bool) -> dict[str, Any]:
    variants = {k: v for k, v in GAN_VARIANTS.items() if not only or k in only}
    base = BASE if not quick else deep_merge(BASE, {
        "data": {"max_per_class": 10, "max_eval_per_class": 10}, "gan": {"epochs": 1, "probe": {"every": 1}},
        "generate": {"n_per_class": 10}, "qa": {"featurenet": {"epochs": 2, "folds": 2}},
        "benchmark": {"steps": 10, "eval_every": 5}})
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="recipes-") as tmp:
        work = Path(tmp)
        base_params = params_from_mapping(base, source="bench/studies/recipes.py")
        prepare_seconds = prepare(work, base_params)
        select, score = val_halves(load_image_set(work / paths.REAL_DIR, "val"))
        real = load_image_set(work / paths.REAL_DIR, "train")
        real_only = val_accuracies(single_stream(real, base_params.benchmark), select, score, base_params)
        print(f"real_only val_score accuracy: {real_only}", flush=True)
        for name, overrides in variants.items():
            params = params_from_mapping(deep_merge(base, {"gan": overrides}), source=f"variant {name}")
            results[name] = run_gan_variant(work, name, params, real_only)
            print(f"{name}: val gain {results[name]['val_gain']['mean']:+.4f} {results[name]['val_gain']['per_seed']}, "
                  f"QA failed {results[name]['qa_failed_gates']}", flush=True)
    return {"prepare_seconds": prepare_seconds, "variants": results}


# Curation variants, then mixing variants with the best curation (a staged search: 7 evaluations, not 15).
CURATION_VARIANTS: dict[str, dict[str, Any]] = {
    "no_curation": {"enabled": False},
    "confidence_q10": {"confidence_quantile": 0.1},
    "confidence_q30": {"confidence_quantile": 0.3},
}
MIXING_VARIANTS: dict[str, dict[str, Any]] = {
    "ratio_0.1": {"synthetic_ratio": 0.1},
    "ratio_0.5": {"synthetic_ratio": 0.5},
    "ratio_0.25_weight_0.5": {"synthetic_weight": 0.5},
    "pretrain_0.5": {"mode": "pretrain", "pretrain_share": 0.5},
}


def mixing(gan_variant: str, quick: bool) -> dict[str, Any]:
    """Curation, then mixing variants on the GAN recipe ``gan_variant``; every score on val_score."""
    base = deep_merge(BASE, {"gan": GAN_VARIANTS[gan_variant]})
    if quick:
        base = deep_merge(base, {"data": {"max_per_class": 10, "max_eval_per_class": 10},
                                 "gan": {"epochs": 1, "probe": {"every": 1}}, "generate": {"n_per_class": 10},
                                 "qa": {"featurenet": {"epochs": 2, "folds": 2}},
                                 "benchmark": {"steps": 10, "eval_every": 5}})
    params = params_from_mapping(base, source="bench/studies/recipes.py mixing")
    out: dict[str, Any] = {"gan_variant": gan_variant, "curation": {}, "mixing": {}}
    with tempfile.TemporaryDirectory(prefix="recipes-mixing-") as tmp:
        work = Path(tmp)
        out["prepare_seconds"] = prepare(work, params)
        select, score = val_halves(load_image_set(work / paths.REAL_DIR, "val"))
        real = load_image_set(work / paths.REAL_DIR, "train")
        out["real_only"] = val_accuracies(single_stream(real, params.benchmark), select, score, params)
        _, out["gan_seconds"] = timed(lambda: run_pipeline(params, work, stages=["train"]))
        run_pipeline(params, work, stages=["generate"])

        def evaluate(name: str, curate_params: dict[str, Any], benchmark: dict[str, Any]) -> dict[str, Any]:
            chosen = params.model_copy(update={
                "curate": params.curate.model_copy(update=curate_params),
                "benchmark": params.benchmark.model_copy(update=benchmark)})
            folder = work / f"curation_{name}"  # curate alone, on the candidates of ``work``
            if not (folder / paths.SYNTHETIC_DIR).exists():
                run_pipeline(chosen, folder, stages=["curate"], upstream=work)
            synthetic = load_image_set(folder / paths.SYNTHETIC_DIR)
            accuracies = val_accuracies(with_synthetic(real, synthetic, chosen.benchmark), select, score, chosen)
            gains = np.array(accuracies) - np.array(out["real_only"])
            print(f"{name}: val gain {gains.mean():+.4f} {gains.round(4).tolist()}", flush=True)
            return {"curate": curate_params, "benchmark": benchmark, "augmented": accuracies,
                    "val_gain": {"mean": float(gains.mean()), "per_seed": gains.tolist()},
                    "load_average": round(os.getloadavg()[0], 2)}

        for name, curate_params in CURATION_VARIANTS.items():
            out["curation"][name] = evaluate(name, curate_params, {})
        best = max(out["curation"], key=lambda n: out["curation"][n]["val_gain"]["mean"])
        out["best_curation"] = best
        for name, benchmark in MIXING_VARIANTS.items():
            out["mixing"][name] = evaluate(best, CURATION_VARIANTS[best], benchmark)
    return out


def mixing_table(result: dict[str, Any]) -> str:
    lines = [f"GAN recipe: {result['gan_variant']}; real_only val_score accuracy "
             f"{np.mean(result['real_only']):.4f} ({', '.join(f'{a:.4f}' for a in result['real_only'])}).", "",
             "| stage | variant | curate | benchmark | val acc augmented | gain (per seed) |", "|---|---|---|---|---|---|"]
    for stage in ("curation", "mixing"):
        for name, v in result[stage].items():
            lines.append(f"| {stage} | {name} | {json.dumps(v['curate'])} | {json.dumps(v['benchmark'])} | "
                         f"{np.mean(v['augmented']):.4f} | {v['val_gain']['mean']:+.4f} "
                         f"({', '.join(f'{g:+.3f}' for g in v['val_gain']['per_seed'])}) |")
    return "\n".join(lines) + "\n"


def gan_table(result: dict[str, Any]) -> str:
    lines = ["| variant | G steps (epochs) | train s | overall FID (floor) | classes passing QA | val acc real_only | "
             "val acc augmented | gain (per seed) |", "|---|---|---|---|---|---|---|---|"]
    for name, v in result["variants"].items():
        passing = sum(not gates for gates in v["qa_failed_gates"].values())
        fid = v["overall_fid"]
        acc = v["val_accuracy"]
        lines.append(f"| {name} | ({v['gan']['epochs']}) | {v['seconds']['train']} | {fid['fid']:.3g} "
                     f"({fid['fid_real_floor']:.3g}) | {passing}/{len(v['qa_failed_gates'])} | "
                     f"{np.mean(acc['real_only']):.4f} | {np.mean(acc['augmented']):.4f} | "
                     f"{v['val_gain']['mean']:+.4f} ({', '.join(f'{g:+.3f}' for g in v['val_gain']['per_seed'])}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["gan", "mixing"])
    parser.add_argument("--only", nargs="*", help="gan: the variants to run")
    parser.add_argument("--gan", default="dcgan_standing", choices=sorted(GAN_VARIANTS), help="mixing: the GAN recipe")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    setup_logging()
    stem = f"recipes_{args.what}"
    started = time.perf_counter()
    machine = {"machine": {**machine_info(), "load_average_at_start": os.getloadavg()}, "code": code_revision()}
    if args.what == "mixing":
        result = {**machine, **mixing(args.gan, args.quick), "seconds_total": round(time.perf_counter() - started, 1)}
        if not args.quick:
            save_results(stem, "# Curation and mixing on BloodMNIST, 100 real per class (bench/studies/recipes.py mixing)\n\n"
                         + mixing_table(result), json_ready(result))
        print(mixing_table(result))
        return
    result = {**machine, **gan(args.only, args.quick)}
    result["seconds_total"] = round(time.perf_counter() - started, 1)
    if args.quick:
        print(gan_table(result))
        return
    path = RESULTS_DIR / f"{stem}.json"
    if args.only and path.is_file():  # keep the other variants' recorded results
        previous = json.loads(path.read_text())
        result["variants"] = {**previous.get("variants", {}), **result["variants"]}
    save_results(stem, "# GAN variants on BloodMNIST, 100 real per class (bench/studies/recipes.py gan)\n\n" + gan_table(result),
                 json_ready(result))
    print(gan_table(result))


if __name__ == "__main__":
    main()
