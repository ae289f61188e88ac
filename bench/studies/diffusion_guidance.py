"""Which classifier-free guidance scale should the diffusion arch sample with? Measured on real val.

    .venv/bin/python bench/studies/diffusion_guidance.py --work /tmp/bm    # ~1 hour on one busy core
    .venv/bin/python bench/studies/bloodmnist_gan.py --archs ddpm --work /tmp/bm   # then: QA of 200 per class

The first command prepares ``<work>`` as bench/studies/bloodmnist_gan.py does (BloodMNIST 28 px, 200
train images per class, augmented; the QA feature net) and runs the train stage of the ddpm arch
with that script's epochs in ``<work>/ddpm`` (its models/gan; a finished model there is reused). The second reuses
both and generates at the recipe's guidance, so set the recipe from this result first.

For each guidance scale w the trained model generates
``--per-class`` images per class with the pipeline's ``generate`` stage (DDIM, the recipe's steps;
in ``<work>/guidance/w<w>``), and the QA feature net (trained on the real train split) scores them
against the real **val** split (never test):

- label agreement: share of synthetic images the feature net assigns to the class asked for
  (the same net's recall on real val is the ceiling a perfect generator would reach);
- domain FID per class against the real val images of that class, and over all classes;
- a class-conditional criterion of distribution match: the mean over classes of FID / the
  real-vs-real floor (real val vs an equal number of real train images of the class).

Guidance raises label agreement and lowers diversity; the default is the scale with the lowest
mean FID ratio (distribution match is what an augmentation source is for), ties broken
towards the smaller scale. Results: bench/results/diffusion_guidance.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from bloodmnist_gan import EPOCHS, FIRST_TRAINING_METRICS, pipeline_params, prepare
from machine import code_revision, machine_info, save_results

from histosynth import paths
from histosynth.classifier.checkpoint import load_classifier
from histosynth.classifier.embed import Embedding, embed
from histosynth.config import Params
from histosynth.config.generate import GenerateParams
from histosynth.dataset import load_image_set
from histosynth.entry import setup_logging
from histosynth.generators.diffusion.recipe import get_recipe
from histosynth.pipeline import run_pipeline
from histosynth.qa.metrics.fid import frechet_distance

SCALES = (1.0, 2.0)


def per_class_fid(real: Embedding, real_labels: np.ndarray, synthetic: Embedding,
                  synthetic_labels: np.ndarray) -> dict[int, float]:
    return {int(c): frechet_distance(real.features[real_labels == c], synthetic.features[synthetic_labels == c])
            for c in np.unique(real_labels)}


def score(work: Path, shared: Params, scale: float, per_class: int, steps: int | None) -> dict[str, Any]:
    folder = work / "guidance" / f"w{scale:g}"
    generate = GenerateParams(n_per_class=per_class, overgenerate=1, device="cpu",
                              diffusion={"guidance": scale, **({"steps": steps} if steps else {})})
    out = folder / paths.CANDIDATES_DIR
    if not (out / "manifest.parquet").is_file():  # deterministic: a rerun may reuse what is there
        run_pipeline(shared.model_copy(update={"generate": generate}), folder, stages=["generate"],
                     upstream=work / "ddpm")
    synthetic = load_image_set(out)
    model, _ = load_classifier(work / paths.FEATURENET_DIR)
    val = load_image_set(work / paths.REAL_DIR, split="val")
    real_e, syn_e = embed(model, val.images), embed(model, synthetic.images)
    agreement = float((syn_e.predictions == synthetic.labels).mean())
    fids = per_class_fid(real_e, val.labels, syn_e, synthetic.labels)
    return {"guidance": scale, "images": len(synthetic), "label_agreement": agreement,
            "label_agreement_per_class": {int(c): float((syn_e.predictions[synthetic.labels == c] == c).mean())
                                          for c in np.unique(synthetic.labels)},
            "fid_per_class": fids, "fid_all": frechet_distance(real_e.features, syn_e.features)}


def floors(work: Path, per_class: int) -> dict[str, Any]:
    """Real train vs real val in the same feature space, ``per_class`` train images per class."""
    model, _ = load_classifier(work / paths.FEATURENET_DIR)
    real = work / paths.REAL_DIR
    val, train = load_image_set(real, split="val"), load_image_set(real, split="train")
    keep = np.concatenate([np.flatnonzero(train.labels == c)[:per_class] for c in np.unique(train.labels)])
    real_e, train_e = embed(model, val.images), embed(model, train.images[keep])
    return {"fid_per_class": per_class_fid(real_e, val.labels, train_e, train.labels[keep]),
            "fid_all": frechet_distance(real_e.features, train_e.features),
            "val_recall": float((real_e.predictions == val.labels).mean()), "class_names": list(val.class_names)}


def markdown(results: dict[str, Any]) -> str:
    m, floor = results["machine"], results["floor"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; {m['date']}; load average at start "
        f"{results['load_average'][0]:.2f}. Code {results['revision']['commit']}. Model: BloodMNIST 28 px ddpm of "
        f"bench/studies/bloodmnist_gan.py ({results['model_epochs']} epochs), {results['per_class']} images per class per "
        f"scale, DDIM {results['steps']} steps. Scored against the real val split with the QA feature net "
        f"(its recall on real val: {floor['val_recall']:.3f}).",
        "",
        "| guidance w | label agreement | FID all classes (floor {:.3g}) | mean per-class FID / floor |".format(
            floor["fid_all"]),
        "|---|---|---|---|",
    ]
    for r in results["scales"]:
        lines.append(f"| {r['guidance']:g} | {r['label_agreement']:.3f} | {r['fid_all']:.3g} "
                     f"| {r['mean_fid_ratio']:.2f} |")
    lines += ["", f"Chosen default: guidance {results['chosen']:g} (lowest mean per-class FID / floor; ties to the "
                  "smaller scale)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="the --work folder of bench/studies/bloodmnist_gan.py")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the recipe's)")
    parser.add_argument("--scales", type=float, nargs="+", default=list(SCALES))
    args = parser.parse_args()
    setup_logging()
    revision, load = code_revision(), os.getloadavg()
    shared = pipeline_params("ddpm", EPOCHS["ddpm"], quick=False)
    prepare(shared, args.work, reuse=True)
    run_pipeline(shared, args.work / "ddpm", stages=["train"], upstream=args.work)
    report = args.work / "ddpm" / paths.TRAIN_REPORT_DIR
    first_run = args.work / "ddpm" / FIRST_TRAINING_METRICS
    if not first_run.is_file():
        shutil.copyfile(report / "metrics.json", first_run)
    floor = floors(args.work, args.per_class)
    scales = []
    for scale in args.scales:
        r = score(args.work, shared, scale, args.per_class, args.steps)
        r["mean_fid_ratio"] = float(np.mean([r["fid_per_class"][c] / floor["fid_per_class"][c]
                                             for c in r["fid_per_class"]]))
        print(f"guidance {scale:g}: label agreement {r['label_agreement']:.3f}, FID {r['fid_all']:.3g}, "
              f"mean FID/floor {r['mean_fid_ratio']:.2f}", flush=True)
        scales.append(r)
    chosen = min(scales, key=lambda r: (round(r["mean_fid_ratio"], 2), r["guidance"]))["guidance"]
    record = json.loads((args.work / "ddpm" / paths.GAN_DIR / "record.json").read_text())
    results = {"machine": machine_info(), "revision": revision, "load_average": list(load),
               "per_class": args.per_class, "steps": args.steps or get_recipe("ddpm").steps,
               "model_epochs": record["epoch"], "floor": floor, "scales": scales, "chosen": chosen}
    table = markdown(results)
    print(table)
    save_results("diffusion_guidance", table, results)


if __name__ == "__main__":
    main()
