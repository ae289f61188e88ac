"""GAN training throughput: real images per second through the discriminator, per arch.

    .venv/bin/python bench/speed/training.py                 # CPU, 1 and 2 threads: about 5 minutes on 2 cores
    .venv/bin/python bench/speed/training.py --device cuda   # on a GPU (bf16 autocast, as training uses there)
    .venv/bin/python bench/speed/training.py --quick         # smoke run, writes nothing

Every arch at its default image size(s) (dcgan and sagan 32 px, ascgan 28, cwgan128 64 and
128) with the recipe's CPU-default width and batch size trains in the real training loop:
``GanTrainer.run_epoch``, the loop ``histosynth.generators.gan.train.train`` runs each epoch, inside the
same ``training_runtime`` (gan.threads, deterministic CPU algorithms; cuDNN autotuning and
gan.precision's bf16 autocast on CUDA) and with the same epoch order (``epoch_batches``). The
images are textured PNGs written by tests/conftest.py's ``write_image_folder`` (8 classes,
two batches per epoch) and loaded as training loads them. DiffAugment, EMA, the WGAN-GP
penalty and ``n_critic`` follow the recipes; ascgan's perceptual loss is off (it needs a
local VGG-19 weights file). A figure counts the real images the discriminator saw, so
ascgan's 5 critic steps per generator step are in it.

Each round builds a fresh trainer, runs an untimed warm-up step, then times whole epochs
until ``--seconds`` have passed; rounds alternate the thread counts so that both see the
same background load. The figure is the median over rounds; the CPU time per image (all
threads of the process) is recorded beside it because the wall clock depends on what else
the machine runs. On CUDA a 64 px DCGAN at the classic width (the source documents' DCGAN
baseline, ``paper_width``) is measured against the goal of 20,000 images/s.

Results go to bench/results/training.json and bench/results/training.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import code_revision, machine_info, save_results

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from conftest import write_image_folder  # noqa: E402  (the test suite's textured images)

from histosynth.config.gan import GanParams, ProbeParams  # noqa: E402
from histosynth.generators.gan.loop import GanTrainer  # noqa: E402
from histosynth.generators.gan.models import get_recipe  # noqa: E402
from histosynth.generators.gan.settings import TrainSettings, resolve_settings  # noqa: E402
from histosynth.generators.training.batches import EpochBatches, TrainingImages  # noqa: E402
from histosynth.generators.training.data import epoch_batches, load_training_set  # noqa: E402
from histosynth.generators.training.runtime import training_runtime  # noqa: E402

CLASSES = tuple(f"class {i}" for i in range(8))
BATCHES_PER_EPOCH = 2
WARMUP_STEPS = 1  # untimed D (and G) steps of a fresh trainer: allocations, oneDNN / cuDNN kernel choice
QUICK_BATCH = 8
GPU_GOAL_IMAGES_PER_S = 20_000


@dataclass(frozen=True)
class Config:
    arch: str
    image_size: int
    width: int | None = None  # None: the recipe's CPU default
    batch_size: int | None = None  # None: the recipe's
    goal: int | None = None  # images/s this row must reach

    def settings(self, device: str, precision: str, threads: int) -> TrainSettings:
        params = GanParams(arch=self.arch, width=self.width, batch_size=self.batch_size, device=device,
                           precision=precision, threads=threads, probe=ProbeParams(every=0))
        return resolve_settings(params)


DEFAULT_CONFIGS = (Config("dcgan", 32), Config("sagan", 32), Config("ascgan", 28), Config("cwgan128", 64),
                   Config("cwgan128", 128))
# The goal's "64 px DCGAN-class model": the registry's dcgan at the classic DCGAN width.
GPU_GOAL_CONFIGS = tuple(Config("dcgan", 64, width=get_recipe("dcgan").paper_width, batch_size=b,
                                goal=GPU_GOAL_IMAGES_PER_S) for b in (64, 512))


def training_folder(config: Config, batch_size: int, scratch: Path) -> Path:
    """Two batches' worth of textured images at the config's size, in the ingest layout."""
    per_class = math.ceil(BATCHES_PER_EPOCH * batch_size / len(CLASSES))
    folder = scratch / f"{config.image_size}px_{per_class}"
    if not folder.is_dir():
        write_image_folder(folder, {"train": per_class}, classes=CLASSES, size=config.image_size)
    return folder


def timed_round(config: Config, folder: Path, device: str, precision: str, threads: int, seconds: float) -> dict:
    """One fresh trainer: a warm-up step, then whole epochs (at least one) until ``seconds`` have passed."""
    settings = config.settings(device, precision, threads)
    data = load_training_set(folder)
    with training_runtime(settings.device, settings.precision, settings.threads) as runtime:
        trainer = GanTrainer(settings, runtime, len(data.class_names), data.image_size)
        images = TrainingImages(data, runtime.device)

        def batches(epoch: int, steps: int | None = None) -> EpochBatches:
            return images.epoch(epoch_batches(len(images), settings.batch_size, settings.seed, epoch)[:steps])

        trainer.run_epoch(batches(0, WARMUP_STEPS), 0)
        epoch, n_images, wall, cpu = 1, 0, 0.0, 0.0
        while n_images == 0 or wall < seconds:
            started_wall, started_cpu = time.perf_counter(), time.process_time()
            result = trainer.run_epoch(batches(epoch), epoch)  # ends with a host sync on CUDA too
            wall += time.perf_counter() - started_wall
            cpu += time.process_time() - started_cpu
            n_images += result.images
            epoch += 1
        return {"images": n_images, "wall_s": wall, "cpu_s": cpu, "threads": torch.get_num_threads(),
                "precision": runtime.precision, "device": str(runtime.device), "settings": settings}


def measure(config: Config, device: str, precision: str, thread_counts: list[int], rounds: int, seconds: float,
            scratch: Path) -> list[dict]:
    """One row per thread count, its rounds interleaved with the other counts' rounds."""
    recipe_batch = config.batch_size or get_recipe(config.arch).batch_size
    folder = training_folder(config, recipe_batch, scratch)
    runs: dict[int, list[dict]] = {t: [] for t in thread_counts}
    for r in range(rounds):
        for threads in thread_counts if r % 2 == 0 else thread_counts[::-1]:
            runs[threads].append(timed_round(config, folder, device, precision, threads, seconds))
    rows = []
    for threads, rounds_run in runs.items():
        s: TrainSettings = rounds_run[0]["settings"]
        rates = [run["images"] / run["wall_s"] for run in rounds_run]
        row = {
            "arch": config.arch, "image_size": config.image_size, "width": s.width, "batch_size": s.batch_size,
            "loss": s.loss, "n_critic": s.n_critic, "diffaugment": list(s.diffaugment), "ema": s.ema,
            "device": rounds_run[0]["device"], "precision": rounds_run[0]["precision"],
            "threads": rounds_run[0]["threads"], "rounds": rounds,
            "images_timed": sum(run["images"] for run in rounds_run),
            "images_per_s": round(statistics.median(rates), 1),
            "images_per_s_rounds": [round(x, 1) for x in rates],
            # CPU seconds per image over all threads: steadier than the wall clock on a shared machine.
            "cpu_us_per_image": round(statistics.median(run["cpu_s"] / run["images"] * 1e6 for run in rounds_run)),
        }
        if config.goal is not None:
            row["goal_images_per_s"] = config.goal
            row["met"] = row["images_per_s"] >= config.goal
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    m, rev = results["machine"], results["revision"]
    dirty = f", uncommitted changes in {len(rev['uncommitted_src'])} src file(s)" if rev["uncommitted_src"] else ""
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, GPU {m['gpu'] or 'none'}, "
        f"torch {m['torch']}, "
        f"Python {m['python']}; {m['date']}; code at {rev['commit']}{dirty}. Load average (1, 5, 15 min) at start "
        f"{results['load_average_start']}, at end {results['load_average_end']}: other jobs share the cores, "
        "see the spread over rounds.",
        "",
        "| arch | px | width | batch | loss (n_critic) | device, precision | threads | img/s through D (rounds) "
        "| CPU us/img | goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["throughput"]:
        goal = f">= {r['goal_images_per_s']:,}: {'met' if r['met'] else 'not met'}" if "goal_images_per_s" in r else "-"
        lines.append(
            f"| {r['arch']} | {r['image_size']} | {r['width']} | {r['batch_size']} | {r['loss']} ({r['n_critic']}) "
            f"| {r['device']}, {r['precision']} | {r['threads']} | **{r['images_per_s']:,.0f}** "
            f"({', '.join(f'{x:,.0f}' for x in r['images_per_s_rounds'])}) | {r['cpu_us_per_image']:,} | {goal} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"one epoch per row at batch {QUICK_BATCH} (smoke test, writes nothing)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to train (gan.device); auto = CUDA when PyTorch sees a GPU")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="gan.precision: auto = bf16 autocast on CUDA, fp32 on CPU")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU thread counts (gan.threads)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per round")
    args = parser.parse_args()

    on_gpu = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    configs = DEFAULT_CONFIGS + (GPU_GOAL_CONFIGS if on_gpu else ())
    thread_counts = [args.threads[0]] if on_gpu else args.threads  # CPU threads barely matter to a GPU run
    rounds, seconds = (1, 0.0) if args.quick else (args.rounds, args.seconds)
    if args.quick:
        configs = tuple(replace(config, batch_size=QUICK_BATCH) for config in configs)
    results: dict = {"machine": machine_info(), "revision": code_revision(),
                     "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="histosynth-bench-train-") as tmp:
        results["throughput"] = [row for config in configs for row in measure(
            config, args.device, args.precision, thread_counts, rounds, seconds, Path(tmp))]
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    table = markdown(results)
    print(table)
    if not args.quick:
        save_results("training_cuda" if on_gpu else "training", table, results)


if __name__ == "__main__":
    main()
