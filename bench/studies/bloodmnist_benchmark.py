"""Do synthetic images make a classifier better on real cytology? BloodMNIST at 25, 50 and 100 real
train images per class, every arm, classifier seeds x generator seeds.

    .venv/bin/python bench/studies/bloodmnist_benchmark.py                 # the study: about 2-3 hours on 2 idle cores
    .venv/bin/python bench/studies/bloodmnist_benchmark.py --sizes 100     # one size (results of the others are kept)
    .venv/bin/python bench/studies/bloodmnist_benchmark.py --quick         # tiny data, few steps: smoke run, writes nothing

Per size n, the pipeline itself (histosynth.pipeline.run_pipeline) in a temporary folder, with
params.yaml's recipe (chosen on real val by bench/studies/recipes.py, never on test) and these study
settings: ingest (``medmnist:bloodmnist`` from /work/shared/data, 28 px, n train images per class
drawn with data.seed 0, the full val and test splits), augment (200 per class), featurenet (the
feature net and its cross-fitted copies) in one project folder; then per generator seed g
(gan.seed = generate.seed = g), in a project folder of its own that reads the first one's outputs:
train (the GAN, on the real images: gan.train_on), generate and curate 400 images per class, qa
(report only), package; and every arm trained with classifier seeds 0-4 for benchmark.steps steps
(the benchmark stage's arms, kept in memory for the bootstrap below). real_only and affine do not
depend on the generator, so they are trained once per classifier seed.

Intervals (95 %) come from one bootstrap that resamples the test images (paired, class-stratified,
as the benchmark stage does), the classifier seeds and the generator seeds, each with replacement,
the same draw for every arm: they cover another test set, retraining the classifier and retraining
the generator. Results: bench/results/bloodmnist_benchmark.json (run.benchmark.gains: the gains at
100 per class; per size every arm's figures) and .md, and bloodmnist_gain_vs_real.png (gain against
real images per class).
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
from histosynth.benchmark.arms import load_benchmark_data
from histosynth.benchmark.bootstrap import percentile_interval, resampled_scores, stratified_counts
from histosynth.benchmark.scores import METRICS, scores
from histosynth.benchmark.training import run_all
from histosynth.config import Params, load_params, params_from_mapping
from histosynth.config.benchmark import DEFAULT_ARMS
from histosynth.entry import setup_logging
from histosynth.pipeline import run_pipeline
from histosynth.qa.report import json_ready

DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
SIZES = (25, 50, 100)
GENERATOR_SEEDS = (0, 1)
CLASSIFIER_SEEDS = (0, 1, 2, 3, 4)
SYNTHETIC_PER_CLASS = 400
STUDY_GAN_EPOCHS = 300
STUDY_STEPS, STUDY_EVAL_EVERY = 1500, 100  # every training of every arm: 1,500 steps, scored on val every 100
GENERATOR_FREE = ("real_only", "affine")
ARMS = tuple(DEFAULT_ARMS)  # the five arms this study was run with (bloodmnist_study.py runs them all)
SHARED_STAGES = ("ingest", "augment", "featurenet")
GENERATOR_STAGES = ("train", "generate", "curate", "qa", "package")
GAINS = (("augmented", "real_only"), ("augmented", "affine"), ("affine_synthetic", "affine"),
         ("affine_synthetic", "real_only"), ("synthetic_only", "real_only"))
RESAMPLES, CONFIDENCE = 2000, 0.95


def study_params(n_real: int, generator_seed: int, quick: bool) -> Params:
    """params.yaml (the recipe) with the study's data, sizes and seeds."""
    recipe = load_params(Path(__file__).resolve().parents[2] / "params.yaml").model_dump(mode="json")
    recipe["data"] = {"source": "medmnist:bloodmnist", "root": str(DATA_ROOT), "image_size": 28,
                      "max_per_class": n_real, "max_eval_per_class": 20 if quick else 0}
    recipe["augment"]["per_class"] = 200
    # the GAN budget bench/studies/recipes.py chose the recipe with (3,750 generator steps at 100 per class)
    recipe["gan"].update(seed=generator_seed, device="cpu", threads=1, epochs=STUDY_GAN_EPOCHS)
    recipe["generate"].update(seed=generator_seed, device="cpu", n_per_class=10 if quick else SYNTHETIC_PER_CLASS)
    recipe["qa"]["enforce"] = False
    recipe["package"].update(name="bloodmnist-study", version="0.0.0")
    # the study's own classifier budget (the demo's params.yaml sizes its smaller one to its 600 tiles)
    recipe["benchmark"].update(seeds=list(CLASSIFIER_SEEDS), threads=2, steps=STUDY_STEPS, eval_every=STUDY_EVAL_EVERY)
    if quick:
        recipe["gan"].update(epochs=1, probe={"every": 1, "max_images": 40})
        recipe["qa"]["featurenet"].update(epochs=2, folds=2)
        recipe["benchmark"].update(steps=10, eval_every=5, seeds=[0, 1])
    return params_from_mapping(recipe, source="bench/studies/bloodmnist_benchmark.py")


def timed(fn) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 1)


def run_size(work: Path, n_real: int, quick: bool) -> dict[str, Any]:
    """Every arm at ``n_real`` real images per class: probabilities (G, S, N, K) per arm, and what made them."""
    base, shared = study_params(n_real, GENERATOR_SEEDS[0], quick), work / "shared"
    seconds: dict[str, float] = {}
    for name in SHARED_STAGES:
        _, seconds[name] = timed(lambda: run_pipeline(base, shared, stages=[name]))
    probabilities: dict[str, list[np.ndarray]] = {arm: [] for arm in ARMS}
    generators: dict[str, Any] = {}
    labels = n_train = None
    for g in GENERATOR_SEEDS[: 1 if quick else None]:
        params, run = study_params(n_real, g, quick), work / f"generator_{g}"
        for name in GENERATOR_STAGES:
            _, seconds[f"{name}_{g}"] = timed(lambda: run_pipeline(params, run, stages=[name], upstream=shared))
        qa = json.loads((run / paths.QA_REPORT_DIR / "metrics.json").read_text())
        data = load_benchmark_data(run / paths.PACKAGE_DIR, shared / paths.AUGMENTED_DIR, params.augment)
        arms = data.arms(params.benchmark)
        wanted = {arm: schedule for arm, schedule in arms.items() if g == GENERATOR_SEEDS[0] or arm not in GENERATOR_FREE}
        started = time.perf_counter()
        runs = run_all(wanted, data.n_train(), params.benchmark, data.val, data.test.images)
        seconds[f"benchmark_{g}"] = round(time.perf_counter() - started, 1)
        for arm, arm_runs in runs.items():
            probabilities[arm].append(arm_runs.probabilities)
        labels, n_train = data.test.labels, data.n_train()
        curation = json.loads((run / paths.CURATE_REPORT_DIR / "metrics.json").read_text())["classes"]
        generators[str(g)] = {
            "qa_passed": qa["passed"],
            "qa_classes_passing": sum(c["passed"] for c in qa["classes"].values()),
            "qa_failed_gates": {name: sorted(k for k, v in c["gates"].items() if v["passed"] is False)
                                for name, c in qa["classes"].items()},
            "overall_fid": qa["fid"],
            "curation": {name: {k: c[k] for k in ("candidates", "kept", "filled", "passed_confidence",
                                                  "passed_realism", "near_copies")} for name, c in curation.items()},
        }
    stacked = {arm: np.stack(p) for arm, p in probabilities.items()}  # (G or 1, S, N, K)
    return {"labels": labels, "probabilities": stacked, "n_train": n_train, "generators": generators,
            "seconds": seconds}


def summarise(probabilities: dict[str, np.ndarray], labels: np.ndarray, n_train: dict[str, int]) -> dict[str, Any]:
    """Per arm each metric's mean over (generator, classifier) seeds with its interval; the gains with theirs.

    ``probabilities[arm]`` is (G, S, N, K); a generator-free arm has G = 1 and stands for every generator.
    """
    counts = stratified_counts(labels, RESAMPLES, seed=0)
    rng = np.random.default_rng([0, 2])
    n_gen = max(p.shape[0] for p in probabilities.values())
    n_cls = next(iter(probabilities.values())).shape[1]
    gen_picks = rng.integers(0, n_gen, (n_gen, RESAMPLES))
    cls_picks = rng.integers(0, n_cls, (n_cls, RESAMPLES))
    resampled, values = {}, {}
    for arm, probs in probabilities.items():
        per_gen = [resampled_scores(p, labels, counts) for p in probs]  # each: metric -> (S, B)
        resampled[arm] = {}
        for name in METRICS:
            table = np.stack([r[name] for r in per_gen])  # (G_arm, S, B)
            g_index = gen_picks % table.shape[0]
            resampled[arm][name] = table[g_index[:, None, :], cls_picks[None, :, :], np.arange(RESAMPLES)].mean(axis=(0, 1))
        per_training = [scores(labels, p) for p in probs.reshape(-1, *probs.shape[2:])]
        values[arm] = {name: [s[name] for s in per_training] for name in METRICS}
    out: dict[str, Any] = {}
    for arm in probabilities:
        out[arm] = {name: {"mean": round(float(np.mean(v)), 6),
                           "std": round(float(np.std(v, ddof=1)), 6) if len(v) > 1 else None,
                           "values": [round(x, 6) for x in v],
                           **dict(zip(("ci_low", "ci_high"),
                                      (round(x, 6) for x in percentile_interval(resampled[arm][name], CONFIDENCE))))}
                    for name, v in values[arm].items()}
        out[arm].update(n_train=n_train[arm], trainings=len(values[arm]["accuracy"]))
    out["gains"] = {}
    for better, than in GAINS:
        gains = {}
        for name in METRICS:
            low, high = percentile_interval(resampled[better][name] - resampled[than][name], CONFIDENCE)
            mean = float(np.mean(values[better][name]) - np.mean(values[than][name]))
            gains[name] = {"mean": round(mean, 6), "ci_low": round(low, 6), "ci_high": round(high, 6)}
        out["gains"][f"{better}_vs_{than}"] = gains
    out["bootstrap"] = {"resamples": RESAMPLES, "confidence": CONFIDENCE,
                        "method": "percentile; test images paired and class-stratified; classifier seeds and "
                                  "generator seeds drawn with replacement, the same draw for every arm"}
    return out


def _figure(f: dict[str, Any]) -> str:
    std = "" if f.get("std") is None else f" ± {f['std']:.3f}"
    return f"{f['mean']:.3f}{std} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]"


def _gain(g: dict[str, Any]) -> str:
    verdict = " (better)" if g["ci_low"] > 0 else " (worse)" if g["ci_high"] < 0 else ""
    return f"{g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]{verdict}"


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}; {machine['date']}; "
             f"code {result['code']['commit']}{' + uncommitted src changes' if result['code'].get('dirty') else ''}. "
             f"Load average at start {result['load_average']['start']}, end {result['load_average']['end']}.", "",
             "Command: `.venv/bin/python bench/studies/bloodmnist_benchmark.py`. Recipe: params.yaml at that commit "
             "(chosen on real val by bench/studies/recipes.py); data: BloodMNIST 28 px, n real train images per class, "
             f"the full val (model selection) and test (every figure) splits; {SYNTHETIC_PER_CLASS} curated synthetic "
             f"images per class; classifier seeds {list(CLASSIFIER_SEEDS)} x generator seeds {list(GENERATOR_SEEDS)}.",
             "", "Mean ± std over trainings [95 % bootstrap interval over test images, classifier seeds and generator "
             "seeds]:", ""]
    for size, sized in sorted(result["sizes"].items(), key=lambda kv: int(kv[0])):
        s = sized["summary"]
        lines += [f"### {size} real images per class", "", "| arm | training images | trainings | accuracy | "
                  "balanced accuracy | macro AUC |", "|---|---|---|---|---|---|"]
        for arm in ARMS:
            a = s[arm]
            lines.append(f"| {arm} | {a['n_train']} | {a['trainings']} | {_figure(a['accuracy'])} | "
                         f"{_figure(a['balanced_accuracy'])} | {_figure(a['auc'])} |")
        lines += ["", "| gain | accuracy | balanced accuracy | macro AUC |", "|---|---|---|---|"]
        for name, g in s["gains"].items():
            lines.append(f"| {name.replace('_vs_', ' - ')} | {_gain(g['accuracy'])} | {_gain(g['balanced_accuracy'])} "
                         f"| {_gain(g['auc'])} |")
        gens = sized["generators"]
        lines += ["", "QA (report only) per generator seed: " + "; ".join(
            f"seed {g}: {v['qa_classes_passing']}/8 classes pass, overall FID {v['overall_fid']['fid']:.3g} "
            f"(floor {v['overall_fid']['fid_real_floor']:.3g})" for g, v in gens.items()) + ".",
            "Wall time (s): " + ", ".join(f"{k} {v}" for k, v in sized["seconds"].items()) + ".", ""]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(k) for k in result["sizes"])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for gain, colour in (("augmented_vs_real_only", "#1565c0"), ("affine_synthetic_vs_affine", "#c62828"),
                         ("augmented_vs_affine", "#6a1b9a")):
        figures = [result["sizes"][str(n)]["summary"]["gains"][gain]["accuracy"] for n in sizes]
        mean = [f["mean"] for f in figures]
        err = [[f["mean"] - f["ci_low"] for f in figures], [f["ci_high"] - f["mean"] for f in figures]]
        ax.errorbar(sizes, mean, yerr=err, marker="o", capsize=4, color=colour, label=gain.replace("_vs_", " - "))
    ax.axhline(0, color="grey", lw=1)
    ax.set(xlabel="real train images per class", ylabel="accuracy gain (real test split)", xticks=sizes,
           title="BloodMNIST: gain from curated synthetic images (95 % intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    setup_logging()
    load_start = [round(x, 2) for x in os.getloadavg()]
    sizes: dict[str, Any] = {}
    for n in ([10] if args.quick else args.sizes):
        with tempfile.TemporaryDirectory(prefix=f"bloodmnist-{n}-") as tmp:
            run = run_size(Path(tmp), n, args.quick)
        sizes[str(n)] = {"summary": summarise(run["probabilities"], run["labels"], run["n_train"]),
                         "generators": run["generators"], "seconds": run["seconds"]}
        print(json.dumps(sizes[str(n)]["summary"]["gains"], indent=1), flush=True)
    result = {"machine": machine_info(), "code": code_revision(),
              "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]}, "sizes": sizes}
    if args.quick:
        print(markdown(result))
        return
    path = RESULTS_DIR / "bloodmnist_benchmark.json"
    if path.is_file():  # keep the other sizes' recorded results
        previous = json.loads(path.read_text())
        result["sizes"] = {**previous.get("sizes", {}), **sizes}
    if "100" in result["sizes"]:
        result["run"] = {"benchmark": result["sizes"]["100"]["summary"]}
    save_results("bloodmnist_benchmark", markdown(result), json_ready(result))
    plot(result, RESULTS_DIR / "bloodmnist_gain_vs_real.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
