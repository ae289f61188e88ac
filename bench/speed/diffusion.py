"""Diffusion arch (ddpm) throughput: training images/s and sampled images/s at 28 and 64 px.

    .venv/bin/python bench/speed/diffusion.py             # CPU: about 4 minutes on 2 cores
    .venv/bin/python bench/speed/diffusion.py --quick     # smoke run, writes nothing
    torchrun --nproc_per_node=1 bench/speed/diffusion.py  # not needed: one process per device is measured

What runs is the pipeline's own code at the recipe's CPU default width (32 channels, one residual
block per level, attention at 8 px and below), random weights (speed does not depend on them):

- training: ``DiffusionTrainer.step`` (the step ``histosynth.generators.train`` runs: flips, noise,
  label dropout, UNet forward + backward, AdamW, EMA) on batches of 64, after warm-up steps;
- sampling: ``GuidedSampler`` (what ``generate`` calls per block of 64 images) with 50 DDIM
  steps, guidance 1 (one network pass per step; classifier-free guidance above 1 needs two).

On a CPU it runs on ``--threads`` torch threads (default 1, as training runs with ``gan.threads:
1`` and generation computes each block on one thread, several blocks at once), fp32 (bf16
autocast is measured too where the CPU has native bf16). On a CUDA device it measures fp32 and bf16 autocast (the
pipeline's default there), with the batch raised to 256 for sampling (``--sample-batch``);
the goal there is >= 2,000 images/s sampled at 28-64 px with 50 steps. Results go to
bench/results/diffusion.json and diffusion.md with the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import code_revision, machine_info, save_results

from histosynth.config import params_from_mapping
from histosynth.generators.diffusion.networks import noise_config, unet_config
from histosynth.generators.diffusion.sampling import GuidedSampler, Sampling
from histosynth.generators.diffusion.settings import resolve_settings
from histosynth.generators.diffusion.trainer import DiffusionTrainer
from histosynth.generators.training.runtime import Runtime

N_CLASSES = 8
STEPS = 50
GOAL_GPU_SAMPLES_PER_S = 2000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int, warm_up=None) -> float:
    """Seconds per call of ``fn`` (best of ``repeats`` rounds after one call of ``warm_up``)."""
    (warm_up or fn)()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def measure(size: int, device: torch.device, precision: str, quick: bool, sample_batch: int) -> dict[str, Any]:
    gan = params_from_mapping({"gan": {"arch": "ddpm", "device": device.type, "precision": precision}}).gan
    settings = resolve_settings(gan)
    dtype = torch.bfloat16 if precision == "bf16" else None
    runtime = Runtime(device, dtype)
    unet = unet_config(size, N_CLASSES, settings.width, settings.layers_per_block, settings.attention_max_size,
                       settings.dropout)
    noise = noise_config(settings.timesteps, settings.schedule, settings.prediction)
    torch.manual_seed(0)
    trainer = DiffusionTrainer(settings, runtime, N_CLASSES, unet, noise)
    batch = 8 if quick else settings.batch_size
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    y = torch.randint(0, N_CLASSES, (batch,), device=device)
    step = iter(range(10**9))
    per_round = 1 if quick else 3
    train_s = _timed(lambda: [trainer.step(x, y, next(step)) for _ in range(per_round)], device,
                     1 if quick else 2, warm_up=lambda: trainer.step(x, y, next(step)))
    train_images = batch * per_round

    steps = 2 if quick else STEPS
    sampler = GuidedSampler(trainer.unet, noise, Sampling("ddim", steps, 1.0), N_CLASSES).to(
        device, memory_format=torch.channels_last).eval()
    n = 8 if quick else sample_batch
    z = torch.randn(n, 3 * size * size, device=device)
    labels = torch.randint(0, N_CLASSES, (n,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype else contextlib.nullcontext()

    def sample(model: GuidedSampler = sampler, count: int = n) -> None:
        with torch.inference_mode(), autocast:
            model(z[:count], labels[:count])

    one_step = GuidedSampler(trainer.unet, noise, Sampling("ddim", 1, 1.0), N_CLASSES).eval()
    # one round after a warm-up pass of one step: a CPU round at 64 px takes minutes
    sample_s = _timed(sample, device, 1 if device.type == "cpu" else 3, warm_up=lambda: sample(one_step, 2))
    parameters = sum(p.numel() for p in trainer.unet.parameters())
    return {"image_size": size, "device": device.type, "precision": precision, "width": settings.width,
            "parameters": parameters, "train_batch": batch, "train_images_per_s": round(train_images / train_s, 1),
            "sample_batch": n, "sample_steps": steps, "sample_images_per_s": round(n / sample_s, 2),
            "unet_evals_per_s": round(n * steps / sample_s, 1)}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} ({m['torch_threads']} "
        f"threads), GPU: {m['gpu'] or 'none'}; {m['date']}; load average at start {results['load_average'][0]:.2f}. "
        f"Code {results['revision']['commit']}. ddpm at its CPU default width, random weights.",
        "",
        "| size | device | arithmetic | UNet parameters | training img/s (batch) | sampling img/s, "
        f"{STEPS} DDIM steps, guidance 1 (batch) | UNet evaluations/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        lines.append(f"| {r['image_size']} px | {r['device']} | {r['precision']} | {r['parameters'] / 1e6:.2f} M "
                     f"| {r['train_images_per_s']} ({r['train_batch']}) | {r['sample_images_per_s']} "
                     f"({r['sample_batch']}) | {r['unet_evals_per_s']} |")
    if not any(r["device"] == "cuda" for r in results["runs"]):
        lines += ["", f"No CUDA device on this machine: the GPU goal (>= {GOAL_GPU_SAMPLES_PER_S} images/s sampled "
                      f"at 28-64 px with {STEPS} steps) is not measured here. On a GPU the same command measures fp32 "
                      "and bf16 autocast."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny batches, 2 steps: smoke run, writes nothing")
    parser.add_argument("--sizes", nargs="+", type=int, default=[28, 64])
    parser.add_argument("--sample-batch", type=int, default=None,
                        help="images per sampling call (default: 64 on CPU, as generate runs; 256 on CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=None,
                        help="default: fp32, and bf16 where the device has native bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    revision, load = code_revision(), os.getloadavg()
    runs = []
    devices = [torch.device("cuda")] if torch.cuda.is_available() else [torch.device("cpu")]
    cpu_bf16 = _cpu_has_native_bf16()
    for device in devices:
        precisions = args.precisions or (["fp32", "bf16"] if device.type == "cuda" or cpu_bf16 else ["fp32"])
        batch = args.sample_batch or (256 if device.type == "cuda" else 64)
        for size in args.sizes:
            for precision in precisions:
                run = measure(size, device, precision, args.quick, batch)
                print(run, flush=True)
                runs.append(run)
    results = {"machine": machine_info(), "revision": revision, "load_average": list(load), "runs": runs}
    table = markdown(results)
    print(table)
    if not args.quick:
        save_results("diffusion", table, results)


def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


if __name__ == "__main__":
    main()
