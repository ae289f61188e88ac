"""Does synthetic data help on BloodMNIST? `histosynth study` (histosynth.study, the same code as the
command) at 25, 50 and 100 real train images per class and in a long tail (100 per class, basophil
and monocyte cut to a tenth), every arm including the strong TrivialAugment + HED stain jitter
baseline, 5 classifier seeds x 2 generator seeds.

    .venv/bin/python bench/studies/bloodmnist_study.py            # the study (many hours on 2 CPU cores)
    .venv/bin/python bench/studies/bloodmnist_study.py --quick    # tiny data, few steps: smoke run, writes no results

It resumes: run the same command again after a kill and the steps done are not repeated (the work
folder, --work, keeps them). Recipe: params.yaml (chosen on real val by bench/studies/recipes.py,
never on test) with the study's data and budgets: BloodMNIST 28 px from /work/shared/data (or
HISTOSYNTH_DATA_ROOT), the full val (model selection) and test (every figure) splits, the GAN of
bench/studies/bloodmnist_benchmark.py (dcgan, 300 epochs on the real images, CPU), 400 curated
synthetic images per class, 1,500 classifier steps per training. Results:
bench/results/bloodmnist_study.json (study.json's shape: {"regimes": {NAME: {"real_per_class",
"long_tail", "arms", "gains", "rare_class_recall"}}} plus machine, code and timing), .md and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info, save_results

from histosynth.config import Params, load_params, params_from_mapping
from histosynth.entry import run_guarded, setup_logging
from histosynth.study import run_study
from histosynth.study.outputs import PICTURE_FILE, markdown

REPO = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
WORK = REPO / "bench" / "work" / "bloodmnist_study"
RARE = ["basophil", "monocyte"]  # the two smallest train classes of BloodMNIST (852 and 993 images)
GENERATOR_SEEDS, CLASSIFIER_SEEDS = [0, 1], [0, 1, 2, 3, 4]


def study_params(quick: bool) -> Params:
    recipe = load_params(REPO / "params.yaml").model_dump(mode="json")
    recipe["data"].update(source="medmnist:bloodmnist", root=str(DATA_ROOT), image_size=28,
                          max_eval_per_class=20 if quick else 0)
    recipe["augment"]["per_class"] = 200
    recipe["gan"].update(device="cpu", threads=1, epochs=300)
    recipe["generate"].update(device="cpu", n_per_class=10 if quick else 400)
    recipe["package"].update(name="bloodmnist-study", version="0.0.0")
    recipe["benchmark"].update(seeds=CLASSIFIER_SEEDS, threads=2, steps=1500, eval_every=100)
    sizes = [10] if quick else [25, 50, 100]
    tail = 20 if quick else 100
    recipe["study"] = {
        "regimes": [{"name": f"{n}_per_class", "real_per_class": n} for n in sizes]
        + [{"name": "long_tail", "real_per_class": tail, "long_tail": {"classes": RARE, "keep": 0.1}}],
        "recipes": {"dcgan": {}}, "generator_seeds": GENERATOR_SEEDS[:1] if quick else GENERATOR_SEEDS,
        "arms": ["real_only", "affine", "augmented", "affine_synthetic", "synthetic_only", "strong",
                 "strong_synthetic", "real_weighted", "real_oversampled"]}
    if quick:
        recipe["gan"].update(epochs=1, probe={"every": 1, "max_images": 40})
        recipe["qa"]["featurenet"].update(epochs=2, folds=2)
        recipe["benchmark"].update(steps=10, eval_every=5, seeds=[0, 1], bootstrap={"resamples": 200})
    return params_from_mapping(recipe, source="bench/studies/bloodmnist_study.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=WORK, help="study folder (kept: the study resumes from it)")
    args = parser.parse_args()
    setup_logging()
    if not (DATA_ROOT / "bloodmnist.npz").is_file():
        sys.exit(f"error: {DATA_ROOT / 'bloodmnist.npz'} not found (set HISTOSYNTH_DATA_ROOT)")
    params = study_params(args.quick)
    load_start, started = [round(x, 2) for x in os.getloadavg()], time.perf_counter()
    if args.quick:
        with tempfile.TemporaryDirectory(prefix="bloodmnist-study-") as tmp:
            result = run_guarded(lambda: run_study(params, Path(tmp)))
        print(markdown(result))
        return
    result = run_guarded(lambda: run_study(params, args.work))
    seconds = round(time.perf_counter() - started)
    header = (f"Machine: {machine_info()['cpu']}; code {code_revision()['commit']}; load average at start {load_start}, "
              f"end {[round(x, 2) for x in os.getloadavg()]}; {seconds} s in this session (a resumed study counts "
              "only its last session).\n\nCommand: `.venv/bin/python bench/studies/bloodmnist_study.py` "
              f"(histosynth study; work folder {args.work}). BloodMNIST 28 px, full val and test splits; long tail: "
              f"{', '.join(RARE)} cut to a tenth of 100 per class; classifier seeds {CLASSIFIER_SEEDS} x generator "
              f"seeds {GENERATOR_SEEDS}; recipe from params.yaml, chosen on real val.\n\n")
    save_results("bloodmnist_study", header + markdown(result, picture_file="bloodmnist_study.png"),
                 {**result, "machine": machine_info(), "code": code_revision(),
                  "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
                  "session_seconds": seconds})
    shutil.copyfile(args.work / PICTURE_FILE, RESULTS_DIR / "bloodmnist_study.png")
    print(json.dumps({name: r["gains"].get("augmented_vs_real_only", {}).get("accuracy")
                      for name, r in result["regimes"].items()}, indent=1))


if __name__ == "__main__":
    main()
