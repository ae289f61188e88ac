"""Do synthetic images make a classifier better on real cytology? BloodMNIST, 100 real train images per class.

    .venv/bin/python bench/bloodmnist_benchmark.py          # about 15 minutes on 2 cores
    .venv/bin/python bench/bloodmnist_benchmark.py --quick  # tiny data, 1 epoch: smoke run, writes nothing

The whole pipeline through its own functions, in a temporary folder: ingest (``medmnist:bloodmnist``
read from /work/shared/data, 28 px, 100 train images per class, the full val and test splits),
augment (``augment.per_class: 200``: 100 affine children per class), train the GAN that
bench/bloodmnist_gan.py found best (dcgan, 150 epochs, on CPU with one torch thread),
generate 400 images per class, the QA feature net and QA (``qa.enforce: false``: reported, not
gating), package, and the benchmark stage (small CNN, seeds 0, 1, 2, the default recipe,
``benchmark.sweep: [100, 200]``). Every other param is the default.

Results go to bench/results/bloodmnist_benchmark.json (metrics.json of the benchmark, the sweep,
per-class recalls, QA verdicts, timings, machine and code revision) and
bench/results/bloodmnist_benchmark.md. Set HISTOSYNTH_DATA_ROOT to read bloodmnist.npz from
another folder.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from machine import code_revision, machine_info, save_results
from sklearn.metrics import confusion_matrix

from histosynth.augment import augment
from histosynth.benchmark import run_benchmark
from histosynth.benchmark.arms import ARMS
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import Params, params_from_mapping
from histosynth.data.ingest import ingest
from histosynth.entry import setup_logging
from histosynth.gan.train import train
from histosynth.generate import generate
from histosynth.package.stage import build_package
from histosynth.qa.report import json_ready
from histosynth.qa.run import run_qa

DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
GAN_EPOCHS = 150  # dcgan's budget in bench/bloodmnist_gan.py
REAL_PER_CLASS, AUGMENT_PER_CLASS, SYNTHETIC_PER_CLASS, SWEEP = 100, 200, 400, [100, 200]


def pipeline_params(quick: bool) -> Params:
    real, augmented, synthetic, evaluation = (10, 20, 40, 10) if quick else (
        REAL_PER_CLASS, AUGMENT_PER_CLASS, SYNTHETIC_PER_CLASS, 0)
    return params_from_mapping({
        "data": {"source": "medmnist:bloodmnist", "root": str(DATA_ROOT), "image_size": 28,
                 "max_per_class": real, "max_eval_per_class": evaluation},
        "augment": {"per_class": augmented},
        "gan": {"arch": "dcgan", "epochs": 1 if quick else GAN_EPOCHS, "device": "cpu", "threads": 1,
                "probe": {"every": 1 if quick else GAN_EPOCHS}},
        "generate": {"n_per_class": synthetic, "device": "cpu"},
        "qa": {"enforce": False, **({"featurenet": {"epochs": 2}} if quick else {})},
        "package": {"name": "bloodmnist-benchmark", "version": "0.0.0"},
        "benchmark": {"sweep": [s // 10 for s in SWEEP] if quick else SWEEP,
                      **({"epochs": 1, "bootstrap": {"resamples": 100}} if quick else {})},
    }, source="bench/bloodmnist_benchmark.py")


def timed(fn) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 1)


def per_class_recall(confusion_file: Path, class_names: list[str]) -> dict[str, float]:
    """Each class's recall over all seeds, from the benchmark's confusion rows."""
    rows = pd.read_csv(confusion_file, keep_default_na=False)
    matrix = confusion_matrix(rows["actual"], rows["predicted"], labels=class_names)
    return {name: round(float(matrix[k, k] / matrix[k].sum()), 4) for k, name in enumerate(class_names)}


def run(work: Path, params: Params) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    _, seconds["ingest"] = timed(lambda: ingest(params.data, work / "real"))
    _, seconds["augment"] = timed(lambda: augment(params.augment, work / "real", work / "augmented",
                                                  work / "augment_preview"))
    record, seconds["gan_train"] = timed(lambda: train(params.gan, work / "augmented", work / "real", work / "gan",
                                                       work / "train_report"))
    _, seconds["generate"] = timed(lambda: generate(params.generate, work / "gan", work / "synthetic"))
    _, seconds["featurenet"] = timed(lambda: train_featurenet(params.qa.featurenet, work / "real",
                                                              work / "featurenet"))
    qa, seconds["qa"] = timed(lambda: run_qa(params.qa, work / "real", work / "synthetic", work / "featurenet",
                                             work / "qa"))
    metadata, seconds["package"] = timed(lambda: build_package(params, work / "real", work / "synthetic", work / "gan",
                                                               work / "qa" / "metrics.json", work / "package",
                                                               revision="bench"))
    load_start = [round(x, 2) for x in os.getloadavg()]
    metrics, seconds["benchmark"] = timed(lambda: run_benchmark(params.benchmark, work / "package",
                                                                work / "augmented", work / "benchmark"))
    class_names = sorted(set(metadata["class_name"]), key=lambda n: metadata.loc[metadata["class_name"] == n,
                                                                                 "label"].iloc[0])
    return {
        "benchmark": metrics,
        "sweep": pd.read_csv(work / "benchmark" / "sweep.csv").to_dict("records"),
        "recall": {arm: per_class_recall(work / "benchmark" / "confusion" / f"{arm}.csv", class_names) for arm in ARMS},
        "counts": {f"{source} {split}": int(n) for (source, split), n
                   in metadata.groupby(["source", "split"]).size().items()},
        "class_names": class_names,
        "gan": {"arch": record["arch"], "epochs": record["epoch"], "real_vs_fake_probe":
                json.loads((work / "train_report" / "metrics.json").read_text()).get("real_vs_fake_accuracy")},
        "qa": {"passed": qa.passed, "classes_passing": [n for n, c in qa.metrics["classes"].items() if c["passed"]],
               "overall_fid": qa.metrics["fid"]},
        "seconds": seconds,
        "benchmark_load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
    }


def _figure(f: dict[str, Any]) -> str:
    std = "" if f.get("std") is None else f" ± {f['std']:.3f}"
    return f"{f['mean']:.3f}{std} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]"


def _gain(g: dict[str, Any]) -> str:
    verdict = "better" if g["ci_low"] > 0 else "worse" if g["ci_high"] < 0 else "no clear difference"
    return f"{g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}] ({verdict})"


def markdown(results: dict[str, Any]) -> str:
    m, r, b, rev = results["machine"], results["run"], results["run"]["benchmark"], results["revision"]
    conf = int(b["bootstrap"]["confidence"] * 100)
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; {m['date']}; code {rev['commit']}"
        f"{' + uncommitted src changes' if rev['uncommitted_src'] else ''}. Shared with other "
        f"engineers' jobs (load average {r['benchmark_load_average']['start'][0]} at the benchmark's start, "
        f"{r['benchmark_load_average']['end'][0]} at its end).",
        "",
        f"Data: {results['data']}. Package: "
        + ", ".join(f"{n} {what}" for what, n in r["counts"].items()) + ".",
        f"GAN: {r['gan']['arch']}, {r['gan']['epochs']} epochs on the augmented set (real-vs-fake probe "
        f"{r['gan']['real_vs_fake_probe']:.3f}); QA passed: {r['qa']['passed']} (classes passing every gate: "
        f"{', '.join(r['qa']['classes_passing']) or 'none'}; not enforced).",
        f"Classifier: {b['classifier']}, seeds {b['seeds']}, benchmark.* defaults; {b['n_test']} real test images.",
        "",
        f"Mean ± std over seeds [{conf}% bootstrap interval, {b['bootstrap']['resamples']} resamples: "
        f"{b['bootstrap']['method']}]:",
        "",
        "| arm | training images | accuracy | balanced accuracy | macro AUC |",
        "|---|---|---|---|---|",
    ]
    for arm in ARMS:
        a = b[arm]
        lines.append(f"| {arm} | {a['n_train']} | {_figure(a['accuracy'])} | {_figure(a['balanced_accuracy'])} "
                     f"| {_figure(a['auc'])} |")
    lines += ["", f"Gains (difference of the means [{conf}% interval]):", "",
              "| gain | accuracy | balanced accuracy | macro AUC |", "|---|---|---|---|"]
    for name, g in b["gains"].items():
        lines.append(f"| {name.replace('_vs_', ' - ')} | {_gain(g['accuracy'])} | {_gain(g['balanced_accuracy'])} "
                     f"| {_gain(g['auc'])} |")
    lines += ["", "Augmented arm against the number of synthetic images per class (mean ± std over seeds):", "",
              "| synthetic per class | accuracy | balanced accuracy | macro AUC |", "|---|---|---|---|"]
    for row in r["sweep"]:
        lines.append(f"| {row['n_synthetic_per_class']} | {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f} "
                     f"| {row['balanced_accuracy_mean']:.3f} ± {row['balanced_accuracy_std']:.3f} "
                     f"| {row['auc_mean']:.3f} ± {row['auc_std']:.3f} |")
    lines += ["", "Recall per class (all seeds pooled):", "",
              "| class | " + " | ".join(ARMS) + " |", "|---|" + "---|" * len(ARMS)]
    for name in r["class_names"]:
        lines.append(f"| {name} | " + " | ".join(f"{r['recall'][arm][name]:.3f}" for arm in ARMS) + " |")
    lines += ["", "Wall time (s): " + ", ".join(f"{step} {s}" for step, s in r["seconds"].items())
              + f"; whole run {results['seconds_total']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data and 1 epoch (smoke test, writes nothing)")
    args = parser.parse_args()
    setup_logging()
    started = time.perf_counter()
    revision = code_revision()  # the code imported now is what runs, whatever is edited meanwhile
    params = pipeline_params(args.quick)
    results: dict[str, Any] = {"machine": machine_info(), "revision": revision}
    results["data"] = (f"{params.data.source} {params.data.image_size} px, {params.data.max_per_class} real train "
                       f"images per class, full real val and test splits; augmented to {params.augment.per_class} "
                       f"per class; {params.generate.n_per_class} synthetic per class")
    with tempfile.TemporaryDirectory(prefix="histosynth-bench-benchmark-") as tmp:
        results["run"] = run(Path(tmp), params)
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    results = json_ready(results)
    table = markdown(results)
    print(table)
    if not args.quick:
        save_results("bloodmnist_benchmark", table, results)


if __name__ == "__main__":
    main()
