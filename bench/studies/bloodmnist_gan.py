"""Generator quality on real cytology in the small-data regime: BloodMNIST, 200 real images per class.

    .venv/bin/python bench/studies/bloodmnist_gan.py            # dcgan and ascgan: about 12 minutes on 2 cores
    .venv/bin/python bench/studies/bloodmnist_gan.py --archs dcgan   # rerun one arch (e.g. after a model fix)
    .venv/bin/python bench/studies/bloodmnist_gan.py --archs ddpm --work /tmp/bm   # the diffusion arch: ~1 hour;
                                                        # keeps the folders (bench/studies/diffusion_guidance.py reads them)
    .venv/bin/python bench/studies/bloodmnist_gan.py --quick    # tiny data and 1 epoch: smoke run, writes nothing

The pipeline itself (histosynth.pipeline.run_pipeline), in a temporary folder: ingest
(``medmnist:bloodmnist`` read from /work/shared/data, 28 px, 200 train and 100 val / test images
per class), augment (``augment.per_class: 200``) and the QA feature net once, then per arch, in a
project folder of its own (``<work>/<arch>``) that reads those: train (on the augmented set, on
CPU, one torch thread, set here, for the epochs in ``EPOCHS``: about 3.5 minutes each on
the shared 2-core machine), generate 200 images per class (one candidate per image, curation off:
the generator's own samples are judged), and QA with ``qa.enforce: false``. Every other param is
the default. Per arch it records the epochs, the training wall time and metrics, every
QA figure with its real-vs-real floor and gate verdict, and copies the final fixed-noise sample
grid to bench/results/bloodmnist_<arch>_samples.png.

Only archs that support 28 px run: MedMNIST publishes 28, 64, 128 and 224 px and the source
never resamples, so sagan (32, 64, 128) and cwgan128 (64, 128) would need bloodmnist_64.npz,
which is not in /work/shared/data (and no download happens here); at 64 px on this CPU they
would also need far more than the time budget (see bench/results/training.md).

Each arch's result records the commit (and uncommitted src files) and load average it ran at.
A run of some archs keeps the recorded results of the others when the real data and the feature
net came out the same (both are deterministic). Results go to bench/results/bloodmnist_gan.json
and bench/results/bloodmnist_gan.md. Set
HISTOSYNTH_DATA_ROOT to read bloodmnist.npz from another folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info, save_results

from histosynth import paths
from histosynth.config import Params, params_from_mapping
from histosynth.entry import setup_logging
from histosynth.pipeline import run_pipeline
from histosynth.qa.report import json_ready

DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
# Epochs per arch for 3-4 minutes of training on one thread of the shared machine (1,600 training
# images per epoch; dcgan ~900-1,200, ascgan ~160-230 images/s there, depending on the other jobs).
# ddpm (the diffusion arch, CPU default width 32): ~45 images/s on one idle thread at 28 px, 12-28
# on the shared machine at load 4-9 (about 2 minutes an epoch): 30 epochs (750 optimiser steps,
# where DDPM trained 800k) are what fitted the time this study had.
EPOCHS = {"dcgan": 150, "ascgan": 30, "ddpm": 30}
# The probe's fakes cost a full sampling run each for ddpm: fewer of them than the GANs' 400.
PROBE_IMAGES = {"ddpm": 96}
# Where bench/studies/diffusion_guidance.py keeps the metrics of the training it ran in a --work folder
# (a later run here resumes the finished model instead of training again).
FIRST_TRAINING_METRICS = "train_metrics_first_run.json"
SKIPPED = {
    "sagan": "supports 32, 64 and 128 px; BloodMNIST is published at 28 / 64 / 128 / 224 px and "
             "bloodmnist_64.npz is not in the shared data folder",
    "cwgan128": "supports 64 and 128 px only; bloodmnist_64.npz / bloodmnist_128.npz are not in the shared "
                "data folder",
}
# Per-class figures recorded beside each other in the summary (their floors come along).
FIGURES = ("kl", "fid", "label_agreement", "coverage", "precision", "recall", "duplicate_share",
           "memorised_share_pixel", "memorised_share_feature")
SHARED_STAGES = ("ingest", "augment", "featurenet")
ARCH_STAGES = ("train", "generate", "curate", "qa")


def pipeline_params(arch: str, epochs: int, quick: bool) -> Params:
    per_class, eval_per_class = (20, 10) if quick else (200, 100)
    return params_from_mapping({
        "data": {"source": "medmnist:bloodmnist", "root": str(DATA_ROOT), "image_size": 28,
                 "max_per_class": per_class, "max_eval_per_class": eval_per_class},
        "augment": {"per_class": per_class},
        # The real-vs-fake probe once, after the last epoch.
        "gan": {"arch": arch, "train_on": "augmented", "epochs": epochs, "device": "cpu", "threads": 1,
                "probe": {"every": epochs, "max_images": PROBE_IMAGES.get(arch, 400)}},
        # the generator's own first n images per class: one candidate per image, none curated away
        "generate": {"n_per_class": per_class, "overgenerate": 1, "device": "cpu"},
        "curate": {"enabled": False},
        "qa": {"enforce": False, **({"featurenet": {"epochs": 2}} if quick else {})},
    }, source="bench/studies/bloodmnist_gan.py")


def timed(fn) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 1)


def class_summary(figures: dict[str, Any]) -> dict[str, Any]:
    """One class's figures with their floors, and each gate's verdict and threshold."""
    out = {}
    for name in FIGURES:
        out[name] = figures.get(name)
        if f"{name}_real_floor" in figures:
            out[f"{name}_real_floor"] = figures[f"{name}_real_floor"]
    out["gates"] = figures["gates"]
    out["failed_gates"] = sorted(g for g, verdict in figures["gates"].items() if verdict["passed"] is False)
    return out


def run_arch(arch: str, epochs: int, work: Path, revision: dict[str, Any], quick: bool) -> dict[str, Any]:
    """train ... qa of ``arch`` in the project folder ``<work>/<arch>``, reading the shared outputs in ``work``."""
    params, folder = pipeline_params(arch, epochs, quick), work / arch
    load_start = [round(x, 2) for x in os.getloadavg()]
    seconds = {}
    for stage in ARCH_STAGES:
        _, seconds[stage] = timed(lambda: run_pipeline(params, folder, stages=[stage], upstream=work))
    train_s, report = seconds["train"], folder / paths.TRAIN_REPORT_DIR
    record = json.loads((folder / paths.GAN_DIR / "record.json").read_text())
    train_metrics = json.loads((report / "metrics.json").read_text())
    first_run = folder / FIRST_TRAINING_METRICS
    if train_metrics["resumed_from_epoch"] == epochs and first_run.is_file():  # trained by an earlier run
        train_metrics = json.loads(first_run.read_text())
        train_s = train_metrics["wall_time_s"]
    qa = json.loads((folder / paths.QA_REPORT_DIR / "metrics.json").read_text())
    classes = qa["classes"]
    failed = {gate for c in classes.values() for gate, v in c["gates"].items() if v["passed"] is False}
    result = {
        "arch": arch, "revision": revision, "date": machine_info()["date"], "load_average_start": load_start,
        "epochs": epochs, "settings": record["params"], "width": record["width"],
        "latent_dim": record["latent_dim"], "train_images": record["train_data"]["n_images"],
        "train_wall_s": train_s, "train_metrics": train_metrics, "generate_s": seconds["generate"],
        "curate_s": seconds["curate"], "qa_s": seconds["qa"],
        "qa_passed": qa["passed"],
        "classes_passing_all_gates": sum(c["passed"] for c in classes.values()),
        "classes_failing_gate": {gate: sum(gate in class_summary(c)["failed_gates"] for c in classes.values())
                                 for gate in sorted(failed)},
        "overall_fid": qa["fid"],
        "classes": {name: class_summary(c) for name, c in classes.items()},
        "qa_metrics": qa,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    if not quick:
        shutil.copyfile(report / "samples_final.png", RESULTS_DIR / f"bloodmnist_{arch}_samples.png")
    print(f"{arch}: {epochs} epochs in {train_s} s; QA passed={qa['passed']}, failing gates "
          f"{result['classes_failing_gate']}", flush=True)
    return result


def _ratio(value: float | None, floor: float | None) -> str:
    return "n/a" if value is None or not floor else f"{value / floor:.1f}x"


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _revision(rev: dict[str, Any]) -> str:
    dirty = f" + uncommitted changes in {', '.join(line.split()[-1] for line in rev['uncommitted_src'])}" \
        if rev["uncommitted_src"] else ""
    return f"{rev['commit']}{dirty}"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, gan.threads 1; shared with other engineers' "
        f"jobs (load averages per arch below). Data: {results['data']}. Feature net (trained once per run, "
        f"deterministic): real val accuracy {results['featurenet']['val_accuracy']:.3f}.",
        "",
        "| arch | code | run (UTC) | load avg start / end | epochs | train wall s | img/s (whole run) "
        "| real-vs-fake probe | overall FID (floor) | classes passing all gates | gates failed (classes of 8) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["archs"].values():
        t, fid = r["train_metrics"], r["overall_fid"]
        failing = ", ".join(f"{g} ({n})" for g, n in r["classes_failing_gate"].items()) or "none"
        lines.append(f"| {r['arch']} | {_revision(r['revision'])} | {r['date']} "
                     f"| {r['load_average_start'][0]} / {r['load_average_end'][0]} | {r['epochs']} "
                     f"| {r['train_wall_s']} | {t['images_per_s']} | {_fmt(t['real_vs_fake_accuracy'])} "
                     f"| {_fmt(fid.get('fid'))} ({_fmt(fid.get('fid_real_floor'))}) "
                     f"| {r['classes_passing_all_gates']} / {len(r['classes'])} | {failing} |")
    for r in results["archs"].values():
        lines += ["", f"{r['arch']} per class (value, real-vs-real floor in brackets; FID also as a multiple of "
                      "its floor; memorisation: near-copy share in pixel / feature space):", "",
                  "| class | KL (floor) | FID (floor) | label agreement (floor) | coverage (floor) | recall "
                  "| memorised px / feat | failed gates |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, c in r["classes"].items():
            lines.append(
                f"| {name.split('(')[0].strip()} | {_fmt(c['kl'])} ({_fmt(c.get('kl_real_floor'))}) "
                f"| {_fmt(c['fid'])} ({_fmt(c.get('fid_real_floor'))}; {_ratio(c['fid'], c.get('fid_real_floor'))}) "
                f"| {_fmt(c['label_agreement'])} ({_fmt(c.get('label_agreement_real_floor'))}) "
                f"| {_fmt(c['coverage'])} ({_fmt(c.get('coverage_real_floor'))}) | {_fmt(c['recall'])} "
                f"| {_fmt(c['memorised_share_pixel'])} / {_fmt(c['memorised_share_feature'])} "
                f"| {', '.join(c['failed_gates']) or 'none'} |")
    lines += ["", "Skipped: " + "; ".join(f"{arch}: {why}" for arch, why in results["skipped"].items()) + "."]
    return "\n".join(lines) + "\n"


def merged_with_recorded(results: dict[str, Any], path: Path) -> dict[str, Any]:
    """Archs not run this time keep their recorded results, when those came from the same data and feature net."""
    if not path.is_file():
        return results
    recorded = json.loads(path.read_text())
    if recorded.get("data") != results["data"] or recorded.get("featurenet") != results["featurenet"]:
        return results
    return {**results, "archs": {**recorded["archs"], **results["archs"]}}


def prepare(shared: Params, work: Path, reuse: bool = False) -> dict[str, Any]:
    """ingest, augment and featurenet in the project folder ``work`` (deterministic: a rerun writes the
    same bytes, so models trained on them before are resumed, not retrained).
    ``reuse``: keep what an earlier run of this script left in ``work``."""
    out: dict[str, Any] = {}
    record_file = work / paths.FEATURENET_DIR / "record.json"
    if not (reuse and record_file.is_file() and (work / paths.AUGMENTED_DIR).is_dir()):
        for stage in SHARED_STAGES:
            _, out[f"{stage}_s"] = timed(lambda: run_pipeline(shared, work, stages=[stage]))
    record = json.loads(record_file.read_text())
    # the feature net is scored on real val (QA never reads test); older records of this study name test
    out["featurenet"] = {"epochs_run": record["epochs_run"], "val_accuracy": record["val_accuracy"],
                         "val_recall": record["val_recall"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="20 images per class, 1 epoch (smoke test, writes nothing)")
    parser.add_argument("--archs", nargs="+", choices=sorted(EPOCHS), default=["dcgan", "ascgan"])
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the data, feature net, models and outputs in this folder instead of a temporary "
                             "one; what an earlier run left there is reused (a finished model is resumed, not "
                             "retrained): use a folder per data setting")
    args = parser.parse_args()
    setup_logging()
    started = time.perf_counter()
    # The code imported at start is what runs, whatever others commit or edit in the checkout meanwhile.
    revision = code_revision()
    results: dict[str, Any] = {"machine": machine_info()}
    with (contextlib.nullcontext(args.work) if args.work
          else tempfile.TemporaryDirectory(prefix="histosynth-bench-bloodmnist-")) as tmp:
        work = Path(tmp)
        shared = pipeline_params(args.archs[0], 1, args.quick)
        results["data"] = (f"{shared.data.source} {shared.data.image_size} px, at most {shared.data.max_per_class} "
                           f"train and {shared.data.max_eval_per_class} val / test images per class; augmented to "
                           f"{shared.augment.per_class} per class; {shared.generate.n_per_class} synthetic per class")
        results.update(prepare(shared, work, reuse=args.work is not None))
        results["archs"] = {arch: run_arch(arch, 1 if args.quick else EPOCHS[arch], work, revision, args.quick)
                           for arch in args.archs}
    results["skipped"] = SKIPPED
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    results = json_ready(results)
    out = RESULTS_DIR / "bloodmnist_gan.json"
    if not args.quick:
        results = merged_with_recorded(results, out)
    table = markdown(results)
    print(table)
    if not args.quick:
        save_results("bloodmnist_gan", table, results)


if __name__ == "__main__":
    main()
