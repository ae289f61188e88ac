"""Throughput of every generator arch on one GPU: training and sampling images/s, fp32 and bf16.

    .venv/bin/python bench/speed/gpu.py              # on a GPU machine: about 5 minutes, at most ~8
    .venv/bin/python bench/speed/gpu.py --dry-run    # the same run on CPU at tiny size (seconds); writes to a temp folder

Data: the pipeline's own ``builtin:ihc`` tiles (scikit-image's immunohistochemistry image, offline),
ingested at 64 px. Per arch (every GAN arch, the projected one included, and the diffusion arch) and
per precision (fp32, bf16 autocast): train with the pipeline's ``train`` for ``TRAIN_STEPS``
discriminator / UNet steps at the arch's recipe (batch size, width: what ``dvc exp run -S
gan.arch=<arch>`` trains; probe off, one checkpoint at the end), then sample ``SAMPLE_IMAGES``
images with the trained generator in batches of ``SAMPLE_BATCH`` under the same precision (GANs:
one forward pass; the diffusion arch: once per sampler, ddim and dpm, at its recipe's steps and
guidance). Training images/s come from the run's own metrics (first epoch, with cuDNN autotuning,
included); sampling images/s are timed after one warm-up batch, with the device synchronised.

A run that would pass ``DEADLINE_S`` is skipped and named in the results, so the command stays
under 8 minutes on a slower GPU. Results: bench/results/gpu.json and gpu.md (the device name, torch
and CUDA versions with them); a dry run writes to ``--out`` (default: a temporary folder) instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info

from histosynth.config import params_from_mapping
from histosynth.config.gan import ARCHS, DIFFUSION_ARCHS
from histosynth.config.generate import DiffusionSampling
from histosynth.data.ingest import ingest
from histosynth.dataset import load_image_set
from histosynth.entry import setup_logging
from histosynth.generators import load_sampling_model, train
from histosynth.generators.diffusion.recipe import get_recipe as diffusion_recipe
from histosynth.generators.gan.models import get_recipe as gan_recipe

PRECISIONS = ("fp32", "bf16")
SAMPLERS = ("ddim", "dpm")
DEADLINE_S = 7 * 60  # no new run starts after this; each run takes well under a minute on a GPU


def sizes(dry_run: bool) -> dict[str, Any]:
    if dry_run:  # every code path, small: 32 px (cwgan128: 64, its smallest), tiny widths, a few images
        return {"image_size": 32, "per_class": 4, "train_steps": 2, "sample_images": 4, "sample_batch": 4,
                "width": 4, "diffusion_steps": 2, "threads": 1, "deadline_s": None}
    return {"image_size": 64, "per_class": 0, "train_steps": 200, "sample_images": 2048, "sample_batch": 256,
            "width": None, "diffusion_steps": None, "threads": 0, "deadline_s": DEADLINE_S}


def image_size(arch: str, size: dict[str, Any]) -> int:
    """``size["image_size"]``, or the arch's smallest size above it when it does not support it."""
    from histosynth.generators.registry import family

    supported = family(arch).image_sizes(arch)
    return size["image_size"] if size["image_size"] in supported else min(s for s in supported if s > size["image_size"])


def real_images(work: Path, pixels: int, per_class: int) -> tuple[Path, int]:
    """builtin:ihc ingested at ``pixels`` px into ``work`` (once per size), and its number of train images."""
    folder = work / f"real_{pixels}"
    if not folder.is_dir():
        data = params_from_mapping({"data": {"source": "builtin:ihc", "image_size": pixels,
                                             "max_per_class": per_class}}, source="bench/speed/gpu.py").data
        ingest(data, folder)
    return folder, len(load_image_set(folder, split="train"))


def batch_size(arch: str) -> int:
    return diffusion_recipe(arch).batch_size if arch in DIFFUSION_ARCHS else gan_recipe(arch).batch_size


def train_params(arch: str, precision: str, n_train: int, size: dict[str, Any], device: str):
    batch = min(batch_size(arch), n_train)
    epochs = math.ceil(size["train_steps"] / max(1, n_train // batch))
    gan = {"arch": arch, "train_on": "real", "epochs": epochs, "batch_size": batch, "width": size["width"],
           "device": device, "precision": precision, "threads": size["threads"], "checkpoint_every": epochs, "ema": 0,
           "probe": {"every": 0}}
    if size["width"] is not None and arch in ("ascgan", "sagan", "cwgan128"):
        gan["width"] = 2  # the smallest that builds every layer of these
    if arch == "projected" and size["width"] is not None:
        gan["feature_size"] = 32
    return params_from_mapping({"gan": gan}, source="bench/speed/gpu.py").gan


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampling_rate(model_dir: Path, device: torch.device, precision: str, n_images: int, batch: int,
                  sampling: DiffusionSampling | None) -> dict[str, Any]:
    generator, record, columns = load_sampling_model(model_dir, device, sampling)
    n_classes, latent_dim = record["n_classes"], record["latent_dim"]
    gen = torch.Generator(device="cpu").manual_seed(0)

    def one_batch(n: int) -> None:
        z = torch.randn(n, latent_dim, generator=gen).to(device)
        y = (torch.arange(n) % n_classes).to(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            generator(z, y)

    one_batch(min(batch, n_images))  # warm-up: kernel selection, allocator
    synchronise(device)
    started = time.perf_counter()
    done = 0
    while done < n_images:
        n = min(batch, n_images - done)
        one_batch(n)
        done += n
    synchronise(device)
    seconds = time.perf_counter() - started
    return {"images": done, "seconds": round(seconds, 3), "images_per_s": round(done / seconds, 1), **columns}


def run_one(arch: str, precision: str, work: Path, size: dict[str, Any], device: str) -> dict[str, Any]:
    real, n_train = real_images(work, image_size(arch, size), size["per_class"])
    params = train_params(arch, precision, n_train, size, device)
    model, report = work / f"{arch}_{precision}" / "model", work / f"{arch}_{precision}" / "train_report"
    started = time.perf_counter()
    record = train(params, real, real, model, report)
    train_wall = time.perf_counter() - started
    metrics = json.loads((report / "metrics.json").read_text())
    steps = params.epochs * (n_train // params.batch_size)
    out: dict[str, Any] = {
        "arch": arch, "precision": precision, "family": record.get("family"), "image_size": record["image_size"],
        "n_train_images": n_train, "batch_size": params.batch_size,
        "width": record.get("width", record.get("params", {}).get("width")), "train_steps": steps,
        "train_images_per_s": metrics.get("images_per_s"), "train_wall_s": round(train_wall, 1),
        "device": metrics.get("device"), "feature_network": record.get("feature_network"), "sampling": {},
    }
    target = torch.device(metrics.get("device", "cpu"))
    samplers = SAMPLERS if arch in DIFFUSION_ARCHS else ("gan",)
    for sampler in samplers:
        sampling = (DiffusionSampling(sampler=sampler, steps=size["diffusion_steps"]) if arch in DIFFUSION_ARCHS
                    else None)
        out["sampling"][sampler] = sampling_rate(model, target, precision, size["sample_images"],
                                                 size["sample_batch"], sampling)
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [f"Device: {results['device_name']} (torch {m['torch']}, CUDA {results['cuda']}); {m['date']}; code "
             f"{results['code']['commit']}. builtin:ihc tiles (px per run below), {results['train_steps']} "
             f"training steps per arch at its recipe's batch and width; sampling {results['sample_images']} images "
             f"in batches of {results['sample_batch']}. Command: `{results['command']}`.", "",
             "| arch | px | precision | batch | width | train img/s | train wall s | sampler | sample img/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        for sampler, s in r["sampling"].items():
            detail = f"{sampler} ({s['steps']} steps, guidance {s['guidance']})" if "steps" in s else sampler
            lines.append(f"| {r['arch']} | {r['image_size']} | {r['precision']} | {r['batch_size']} | {r['width']} "
                         f"| {r['train_images_per_s']} | {r['train_wall_s']} | {detail} | {s['images_per_s']} |")
    if results["skipped"]:
        lines += ["", "Skipped (deadline): " + ", ".join(results["skipped"])]
    lines += ["", f"Total: {results['seconds_total']} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the whole run in seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default bench/results; a dry run: a temporary folder)")
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    args = parser.parse_args()
    setup_logging()
    started = time.perf_counter()
    size = sizes(args.dry_run)
    device = "cpu" if args.dry_run else "auto"
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA GPU visible to torch; run on a GPU machine, or use --dry-run to check the "
              "script on CPU", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix="histosynth-gpu-bench-") as tmp:
        work = Path(tmp)
        runs, skipped = [], []
        for arch in args.archs:
            for precision in PRECISIONS:
                if size["deadline_s"] and time.perf_counter() - started > size["deadline_s"]:
                    skipped.append(f"{arch} {precision}")
                    continue
                runs.append(run_one(arch, precision, work, size, device))
                print(json.dumps({k: runs[-1][k] for k in ("arch", "precision", "train_images_per_s")}
                                 | {"sampling": {s: v["images_per_s"] for s, v in runs[-1]["sampling"].items()}}),
                      flush=True)
        out_dir = args.out or (Path(tmp) / "results" if args.dry_run else RESULTS_DIR)
        results = {
            "machine": machine_info(), "code": code_revision(),
            "device_name": torch.cuda.get_device_name(0) if device != "cpu" else "cpu (dry run)",
            "cuda": torch.version.cuda, "dry_run": args.dry_run, "image_size": size["image_size"],
            "train_steps": size["train_steps"], "sample_images": size["sample_images"],
            "sample_batch": size["sample_batch"],
            "command": "python " + " ".join(["bench/speed/gpu.py", *sys.argv[1:]]),
            "runs": runs, "skipped": skipped, "seconds_total": round(time.perf_counter() - started, 1),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
        (out_dir / "gpu.md").write_text(markdown(results))
        print(markdown(results))


if __name__ == "__main__":
    main()
