"""Which generator should histosynth default to? BloodMNIST at 100 real train images per class, per
recipe: train, generate + curate, QA (report only) with the Classification Accuracy Score.

    .venv/bin/python bench/studies/bloodmnist_generators.py                          # every recipe, generator seed 0
    .venv/bin/python bench/studies/bloodmnist_generators.py --recipes dcgan projected  # some recipes
    .venv/bin/python bench/studies/bloodmnist_generators.py --seeds 0 1               # more generator seeds
    .venv/bin/python bench/studies/bloodmnist_generators.py --train-only              # only train (resumed later)
    .venv/bin/python bench/studies/bloodmnist_generators.py --quick --work /tmp/q    # tiny smoke run, writes no results

The pipeline's own functions, in ``--work`` (default /tmp/histosynth-bloodmnist-generators; kept, so
that an interrupted run resumes: a trained model is resumed, not retrained): ingest
(``medmnist:bloodmnist`` from /work/shared/data, 28 px, data.max_per_class 100, the full val and
test splits), augment and the QA feature net with its cross-fitted copies (params.yaml), then per
recipe and generator seed: train on the real train split (one torch thread), generate
``generate.overgenerate`` x 400 candidates per class, curate 400 per class, QA with
``qa.enforce: false`` and the Classification Accuracy Score (a classifier trained on the curated
synthetic images only, scored on real val, beside the same recipe trained on the real train split).
Nothing reads the test split. Every other param is params.yaml's.

Equal compute: every recipe trains for the same number of generator steps (``G_STEPS``, dcgan's
300 epochs of 12 batches in bench/studies/bloodmnist_benchmark.py); a recipe's epochs follow from its batch
size. The recipe chosen (``chosen: true``) is the one with the highest CAS on real val among those
run with generator seed 0. Every recipe tried stays in the results.

Results: bench/results/bloodmnist_generators.json ({"generators": [one entry per recipe and seed]})
and .md, written after every recipe; a recipe already there with the same identity (data, feature net,
budget) is not rerun: delete its entry (or pass --rerun) to run it again. Entries measured on another
machine (whose feature net trained to other bytes) stay beside this machine's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info

from histosynth.augment import augment
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import Params, load_params, params_from_mapping
from histosynth.curate import curate
from histosynth.data.ingest import ingest
from histosynth.dataset import load_image_set
from histosynth.entry import setup_logging
from histosynth.generate import generate
from histosynth.generators import train
from histosynth.qa.report import json_ready
from histosynth.qa.run import run_qa

REPO = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
DEFAULT_WORK = Path("/tmp/histosynth-bloodmnist-generators")
RESULTS_STEM = "bloodmnist_generators"
REAL_PER_CLASS = 100
SYNTHETIC_PER_CLASS = 400
# Generator steps of every recipe: dcgan's 300 epochs x 12 batches of 64 (800 real images) in
# bench/studies/bloodmnist_benchmark.py, the budget today's recipe was chosen with.
G_STEPS = 3600
# gan.* overrides of params.yaml per recipe. dcgan is today's default; the projected variants were
# chosen for the CPU budget (about 30 CPU-minutes of training at 28 px) and differ in one thing each.
RECIPES: dict[str, dict[str, Any]] = {
    "dcgan": {"arch": "dcgan"},
    "projected": {"arch": "projected"},  # recipe: batch 32, frozen-network input 64 px
    # vision-aided ensemble: dcgan's pixel discriminator beside the frozen network (colour, fine texture)
    "projected_pixel": {"arch": "projected", "pixel_discriminator": True},
    # sample from the generator's moving average, as Projected GAN and StyleGAN do
    "projected_ema": {"arch": "projected", "ema": 0.999},
    # the class-conditional diffusion model editing the real train images (SDEdit), batch and EMA of
    # bench/studies/diffusion_edits.py; its generate.* settings below
    "ddpm_edit": {"arch": "ddpm", "batch_size": 32, "ema": 0.999},
}
# generate.* overrides per recipe: the edit settings chosen on real val by bench/studies/diffusion_edits.py
GENERATE: dict[str, dict[str, Any]] = {
    "ddpm_edit": {"mode": "edit", "edit": {"strength": 0.2, "keep_colour": "histogram"}},
}
QUICK_G_STEPS = 4
# Steps of each CAS training: bench/studies/bloodmnist_benchmark.py's STUDY_STEPS, set here (the demo's
# params.yaml sizes its benchmark.steps to its 600 tiles).
CAS_STEPS = 1500


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(fn) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds (all threads)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = fn()
    return value, round(time.perf_counter() - wall, 1), round(cpu_seconds() - cpu, 1)


def base_params(quick: bool) -> dict[str, Any]:
    recipe = load_params(REPO / "params.yaml").model_dump(mode="json")
    recipe["data"] = {"source": "medmnist:bloodmnist", "root": str(DATA_ROOT), "image_size": 28,
                      "max_per_class": 10 if quick else REAL_PER_CLASS, "max_eval_per_class": 10 if quick else 0}
    recipe["generate"].update(n_per_class=5 if quick else SYNTHETIC_PER_CLASS, device="cpu")
    recipe["qa"]["enforce"] = False
    # CAS at the BloodMNIST benchmark study's training budget, so real_only compares with bench/results/
    # bloodmnist_benchmark.md's real_only (there: best of 15 val scores, on test; here: final weights, on val)
    recipe["qa"]["cas"].update(enabled=True, steps=20 if quick else CAS_STEPS)
    if quick:
        recipe["qa"]["featurenet"].update(epochs=2, folds=2)
        recipe["qa"]["draws"] = 5
    return recipe


def recipe_params(name: str, seed: int, n_train: int, quick: bool) -> Params:
    recipe = base_params(quick)
    gan = {**recipe["gan"], **RECIPES[name], "seed": seed, "device": "cpu", "threads": 1}
    probe_images = 40 if quick else 400
    # batch size as training resolves it (the arch's recipe when params.yaml says null)
    from histosynth.generators.gan.models import get_recipe

    batch = gan.get("batch_size") or get_recipe(gan["arch"]).batch_size
    steps_per_epoch = max(1, n_train // batch)
    epochs = math.ceil((QUICK_G_STEPS if quick else G_STEPS) / steps_per_epoch)
    gan.update(epochs=epochs, checkpoint_every=max(1, epochs // 10), probe={"every": epochs, "max_images": probe_images})
    recipe["gan"] = gan
    recipe["generate"] = {**recipe["generate"], **GENERATE.get(name, {}), "seed": seed}
    return params_from_mapping(recipe, source=f"bench/studies/bloodmnist_generators.py ({name}, seed {seed})")


def prepare(work: Path, quick: bool) -> dict[str, Any]:
    """Real data, the augmented set and the QA feature net (deterministic; reused when already there)."""
    params = params_from_mapping(base_params(quick), source="bench/studies/bloodmnist_generators.py")
    record_file = work / "featurenet" / "record.json"
    if not record_file.is_file():
        ingest(params.data, work / "real")
        augment(params.augment, work / "real", work / "augmented", work / "augment_preview")
        train_featurenet(params.qa.featurenet, work / "real", work / "featurenet")
    record = json.loads(record_file.read_text())
    return {"featurenet": {k: record[k] for k in ("epochs_run", "val_accuracy", "real_manifest_md5")},
            "n_train": len(load_image_set(work / "real", split="train"))}


def _gan_steps(record: dict[str, Any], n_train: int) -> int:
    return record["epoch"] * (n_train // record["params"]["batch_size"]) // record["params"].get("n_critic", 1)


def train_recipe(name: str, seed: int, work: Path, n_train: int, quick: bool) -> dict[str, Any]:
    """Train (or resume, or find trained) one recipe; its CPU and wall seconds summed over the runs that trained it."""
    params = recipe_params(name, seed, n_train, quick)
    run = work / f"{name}_seed{seed}"
    record, wall, cpu = measured(lambda: train(params.gan, work / "real", work / "real", run / "model",
                                               run / "train_report"))
    metrics = json.loads((run / "train_report" / "metrics.json").read_text())
    parts_file = run / "training_parts.json"
    parts = json.loads(parts_file.read_text()) if parts_file.is_file() and metrics["resumed_from_epoch"] else []
    if metrics["resumed_from_epoch"] < params.gan.epochs:  # this call trained
        parts.append({"from_epoch": metrics["resumed_from_epoch"], "to_epoch": params.gan.epochs, "wall_s": wall,
                      "cpu_s": cpu, "metrics": metrics, "load_average_end": [round(x, 2) for x in os.getloadavg()]})
        parts_file.write_text(json.dumps(parts, indent=1))
    training = {"wall_s": round(sum(p["wall_s"] for p in parts), 1), "cpu_s": round(sum(p["cpu_s"] for p in parts), 1),
                "parts": len(parts), "metrics": parts[-1]["metrics"] if parts else metrics,
                "load_average_end": parts[-1]["load_average_end"] if parts else None}
    return {"params": params, "record": record, "training": training, "run": run, "n_train": n_train}


def evaluate_recipe(name: str, seed: int, work: Path, trained: dict[str, Any], revision: dict[str, Any],
                    command: str, results_dir: Path) -> dict[str, Any]:
    params: Params = trained["params"]
    run: Path = trained["run"]
    candidates = params.generate.model_copy(update={"n_per_class": params.generate.candidates_per_class})
    load_start = [round(x, 2) for x in os.getloadavg()]
    real_dir = work / "real" if candidates.mode == "edit" else None
    _, generate_s, _ = measured(lambda: generate(candidates, run / "model", run / "candidates", real_dir))
    _, curate_s, _ = measured(lambda: curate(params.curate, params.generate.n_per_class, run / "candidates",
                                             work / "real", work / "augmented", work / "featurenet",
                                             run / "synthetic", run / "curate_report"))
    qa, qa_s, qa_cpu = measured(lambda: run_qa(params.qa, work / "real", run / "synthetic", work / "featurenet",
                                               run / "qa", work / "augmented"))
    classes = qa.metrics["classes"]
    cas = qa.metrics.get("cas") or {}
    record, training = trained["record"], trained["training"]
    entry = {
        "recipe": name, "generator_seed": seed, "chosen": False,
        "cas": cas.get("synthetic_only"), "real_only": cas.get("real_only"),
        "cas_gap": None if not cas else round(cas["real_only"] - cas["synthetic_only"], 4),
        "qa_classes_passed": sum(c["passed"] for c in classes.values()), "qa_classes": len(classes),
        "overall_fid": qa.metrics["fid"].get("fid"), "overall_fid_floor": qa.metrics["fid"].get("fid_real_floor"),
        "fid_over_floor": {n: _ratio(c.get("fid"), c.get("fid_real_floor")) for n, c in classes.items()},
        "failed_gates": {n: sorted(g for g, v in c["gates"].items() if v["passed"] is False) for n, c in classes.items()},
        "cas_per_class": cas.get("per_class"),
        "gan": {k: v for k, v in RECIPES[name].items()}, "generate": GENERATE.get(name, {}),
        "settings": record["params"],
        "generator_steps": _gan_steps(record, trained["n_train"]),
        "feature_network": record.get("feature_network"),
        "train_cpu_s": training["cpu_s"], "train_wall_s": training["wall_s"],
        "train_cpu_minutes": round(training["cpu_s"] / 60, 1),
        "train_images_per_s": training["metrics"].get("images_per_s"),
        "real_vs_fake_probe": training["metrics"].get("real_vs_fake_accuracy"),
        "generate_s": generate_s, "curate_s": curate_s, "qa_s": qa_s, "qa_cpu_s": qa_cpu,
        "cas_details": cas,
        "command": command, "machine": machine_info(), "code": revision,
        "load_average": {"start_evaluation": load_start, "end": [round(x, 2) for x in os.getloadavg()],
                         "end_training": training.get("load_average_end")},
    }
    grid = run / "train_report" / "samples_final.png"
    if grid.is_file() and params.data.max_per_class == REAL_PER_CLASS:
        shutil.copyfile(grid, results_dir / f"{RESULTS_STEM}_{name}_seed{seed}_samples.png")
    return json_ready(entry)


def _ratio(value: float | None, floor: float | None) -> float | None:
    return None if value is None or not floor else round(value / floor, 2)


def choose(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark the recipe with the highest CAS on real val (generator seed 0) as chosen."""
    scored = [e for e in entries if e["generator_seed"] == 0 and e["cas"] is not None]
    best = max(scored, key=lambda e: e["cas"])["recipe"] if scored else None
    return [{**e, "chosen": e["recipe"] == best} for e in entries]


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    lines = [f"BloodMNIST 28 px, {REAL_PER_CLASS} real train images per class, full val split (never test); "
             f"{SYNTHETIC_PER_CLASS} curated synthetic images per class; every recipe {G_STEPS} generator steps "
             "on one torch thread. CAS: classifier (benchmark recipe) trained on the synthetic images only, "
             "accuracy on real val; real only: the same recipe on the real train split. Chosen on real val: "
             "highest CAS (generator seed 0).", "",
             "| recipe | seed | chosen | CAS | real only | gap | QA classes passed | overall FID (floor) "
             "| FID / floor per class | train CPU min | probe | code | machine (QA feature net's val accuracy) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in results["generators"]:
        ratios = ", ".join(f"{v:.1f}" if v is not None else "n/a" for v in e["fid_over_floor"].values())
        lines.append(f"| {e['recipe']} | {e['generator_seed']} | {'yes' if e['chosen'] else ''} | {_fmt(e['cas'])} "
                     f"| {_fmt(e['real_only'])} | {_fmt(e['cas_gap'])} | {e['qa_classes_passed']} / {e['qa_classes']} "
                     f"| {_fmt(e['overall_fid'], 2)} ({_fmt(e['overall_fid_floor'], 2)}) | {ratios} "
                     f"| {e['train_cpu_minutes']} | {_fmt(e['real_vs_fake_probe'], 2)} | {e['code']['commit'][:7]} "
                     f"| {e['machine']['cpu']} ({_fmt(e['identity']['featurenet']['val_accuracy'], 4)}) |")
    lines += ["", "Failed gates per class:", ""]
    for e in results["generators"]:
        failed = "; ".join(f"{n.split('(')[0].strip()}: {', '.join(g) or 'none'}" for n, g in e["failed_gates"].items())
        lines.append(f"- {e['recipe']} (seed {e['generator_seed']}): {failed}")
    lines += ["", "Machines: 2 cores each, shared with other jobs (load averages in the JSON). The same params "
              "train other bytes on another CPU, the QA feature net included (its val accuracy names it). "
              "Command per entry in the JSON."]
    return "\n".join(lines) + "\n"


def load_recorded(results_dir: Path) -> list[dict[str, Any]]:
    """Every recorded entry, each with the identity (data, feature net, budget) it was measured under."""
    path = results_dir / f"{RESULTS_STEM}.json"
    if not path.is_file():
        return []
    recorded = json.loads(path.read_text())
    # files written before entries carried their identity held one for all
    return [{"identity": recorded.get("identity"), **e} for e in recorded["generators"]]


def _key(entry: dict[str, Any]) -> tuple[str, int, str]:
    return entry["recipe"], entry["generator_seed"], json.dumps(entry["identity"], sort_keys=True)


def record(entry: dict[str, Any], results_dir: Path) -> None:
    """Add ``entry`` to the results file, re-read just now: another run of this script may have added its own.
    It replaces the entry of the same recipe, seed and identity; one measured under another identity (another
    machine's feature net: other CPUs train other bytes) stays beside it."""
    entries = [e for e in load_recorded(results_dir) if _key(e) != _key(entry)]
    order = list(RECIPES)
    entries = choose(sorted(entries + [entry], key=lambda e: (e["generator_seed"], order.index(e["recipe"])
                                                              if e["recipe"] in order else len(order))))
    results = {"machine": machine_info(), "generators": entries}
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{RESULTS_STEM}.json").write_text(json.dumps(results, indent=2) + "\n")
    (results_dir / f"{RESULTS_STEM}.md").write_text(markdown(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--train-only", action="store_true", help="train the recipes (resumable), evaluate nothing")
    parser.add_argument("--rerun", action="store_true", help="evaluate recipes already in the results again")
    parser.add_argument("--quick", action="store_true", help="10 real images per class, a few steps; writes no results")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the results go (default bench/results; e.g. the checkout's when running a copy)")
    args = parser.parse_args()
    setup_logging()
    command = "python " + shlex.join(["bench/studies/bloodmnist_generators.py", *sys.argv[1:]])
    revision = code_revision()  # the code imported at start is what runs
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    prepared = prepare(work, args.quick)
    identity = {"data": f"medmnist:bloodmnist 28 px, {REAL_PER_CLASS} real train per class, full val",
                "featurenet": prepared["featurenet"], "g_steps": G_STEPS, "synthetic_per_class": SYNTHETIC_PER_CLASS}
    entries = [] if args.quick else load_recorded(args.results_dir)
    for seed in args.seeds:
        for name in args.recipes:
            done = any(e["recipe"] == name and e["generator_seed"] == seed and e["identity"] == identity
                       for e in entries)
            if done and not args.rerun and not args.train_only:
                print(f"{name} seed {seed}: already in the results, skipped", flush=True)
                continue
            trained = train_recipe(name, seed, work, prepared["n_train"], args.quick)
            print(f"{name} seed {seed}: trained ({trained['training']['cpu_s']} CPU s)", flush=True)
            if args.train_only:
                continue
            entry = {"identity": identity, **evaluate_recipe(name, seed, work, trained, revision, command,
                                                             args.results_dir)}
            print(f"{name} seed {seed}: CAS {entry['cas']} (real only {entry['real_only']}), QA classes passed "
                  f"{entry['qa_classes_passed']} / {entry['qa_classes']}", flush=True)
            if not args.quick:
                record(entry, args.results_dir)


if __name__ == "__main__":
    main()
