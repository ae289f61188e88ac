"""Generation benchmarks: throughput against raw PNG writing, and peak memory against N.

    .venv/bin/python bench/speed/generation.py            # both benchmarks (a few minutes on 2 cores)
    .venv/bin/python bench/speed/generation.py --quick    # smaller N, for a smoke run

1. Throughput: the generation engine end to end (generator forward + PNG encode + MD5 + write,
   MD5SUMS and manifest included) against raw PNG encode + MD5 + write of the same images, with
   the same writer threads, in the same run. Rounds alternate raw and end-to-end so that both
   see the same background load; the figures are medians over rounds. The generator is the
   registry's dcgan at its CPU default width with random weights (throughput does not depend
   on the weights), in fp32 (the CPU default) and, where the CPU has native bf16, in bf16
   (generate.precision).
2. Memory: peak RSS of the real `generate` entry point (checkpoint loading included) making
   10k and 100k images of 28 px, each in its own child process that reports its own peak
   (bench/stage_peak.py: ``wait4``'s ru_maxrss would count this process's memory too), writing to a temporary folder on disk that is deleted afterwards.

Results go to bench/results/generation.json and bench/results/generation.md (the table that
bench/README.md quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import machine_info, save_results
from stage_peak import tree_peak_kib

from histosynth.config.generate import GenerateParams
from histosynth.generate import generate
from histosynth.generate.sampler import BlockSampler
from histosynth.generate.writer import write_synthetic_set
from histosynth.generators.gan.models import build_generator, get_recipe
from histosynth.generators.training.checkpoint import save_generator, write_record
from histosynth.images import write_pngs
from histosynth.parallel import usable_cores

ARCH = "dcgan"
N_CLASSES = 8
CLASS_NAMES = [f"class {i}" for i in range(N_CLASSES)]
THROUGHPUT_GOAL = 0.7
RSS_GOAL = 1.2


def dcgan(image_size: int) -> tuple[torch.nn.Module, int, int]:
    recipe = get_recipe(ARCH)
    torch.manual_seed(0)
    return build_generator(ARCH, N_CLASSES, image_size, recipe.latent_dim, recipe.width), recipe.latent_dim, recipe.width


def timed(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def cpu_has_native_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def throughput(image_size: int, n_per_class: int, rounds: int, scratch: Path, precision: str) -> dict:
    generator, latent_dim, width = dcgan(image_size)
    sampler = BlockSampler(generator, latent_dim, seed=0, device=torch.device("cpu"), precision=precision)
    images = [image for _, _, image in sampler.stream(N_CLASSES, n_per_class, lookahead=256)]
    n = len(images)

    def end_to_end(out: Path) -> None:
        write_synthetic_set(sampler, CLASS_NAMES, n_per_class, out, checkpoint_md5="0" * 32, arch=ARCH,
                            lookahead=GenerateParams().batch_size)

    def raw(out: Path) -> None:
        out.mkdir()
        for _ in write_pngs(((out / f"{i:06d}.png", image) for i, image in enumerate(images)), usable_cores()):
            pass

    runs: dict[str, list[tuple[float, float]]] = {"raw": [], "end_to_end": []}
    for r in range(rounds):
        order = [("raw", raw), ("end_to_end", end_to_end)]
        for name, fn in order if r % 2 == 0 else order[::-1]:  # alternate, so neither always goes first
            out = scratch / f"{name}_{image_size}_{precision}_{r}"
            runs[name].append(timed(lambda: fn(out)))
            shutil.rmtree(out)
    rates = {name: [n / wall for wall, _ in times] for name, times in runs.items()}
    cpu_us = {name: statistics.median(cpu / n * 1e6 for _, cpu in times) for name, times in runs.items()}
    ratios = [e / r for e, r in zip(rates["end_to_end"], rates["raw"])]
    result = {
        "image_size": image_size, "precision": precision, "arch": ARCH, "width": width, "images": n,
        "rounds": rounds, "raw_images_per_s": round(statistics.median(rates["raw"])),
        "end_to_end_images_per_s": round(statistics.median(rates["end_to_end"])),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(x, 3) for x in ratios],
        # CPU seconds per image over all threads: what the ratio tends to on otherwise idle cores.
        "raw_cpu_us_per_image": round(cpu_us["raw"]),
        "end_to_end_cpu_us_per_image": round(cpu_us["end_to_end"]),
        "cpu_ratio": round(cpu_us["raw"] / cpu_us["end_to_end"], 3),
        "goal": THROUGHPUT_GOAL,
    }
    result["met"] = result["ratio"] >= THROUGHPUT_GOAL
    print(json.dumps(result), flush=True)
    return result


def peak_rss(n_images: int, model_dir: Path, scratch: Path) -> int:
    """Peak RSS (bytes) of a child process that runs `generate` for ``n_images`` images."""
    out = scratch / f"rss_{n_images}"
    child = subprocess.run([sys.executable, __file__, "--child", str(n_images), str(model_dir), str(out)],
                           stdout=subprocess.PIPE, text=True)
    if child.returncode != 0:
        raise SystemExit(f"the child generating {n_images} images failed (exit status {child.returncode})")
    return int(child.stdout.split()[-1]) * 1024  # the child's last line: its peak in KiB


def memory(sizes: list[int], scratch: Path) -> dict:
    image_size = 28
    generator, latent_dim, width = dcgan(image_size)
    model_dir = scratch / "model"
    save_generator(model_dir, generator.state_dict())
    write_record(model_dir, {"arch": ARCH, "n_classes": N_CLASSES, "class_names": CLASS_NAMES,
                             "image_size": image_size, "latent_dim": latent_dim, "width": width})
    peaks = {}
    for n in sizes:
        peaks[n] = peak_rss(n, model_dir, scratch)
        print(f"{n} images: peak RSS {peaks[n] / 2**20:.0f} MiB", flush=True)
    small, large = min(sizes), max(sizes)
    result = {
        "image_size": image_size, "arch": ARCH, "width": width,
        "peak_rss_mib": {str(n): round(p / 2**20, 1) for n, p in peaks.items()},
        "ratio": round(peaks[large] / peaks[small], 3),
        "compared": [small, large],
        # What does grow: the md5 list and the returned manifest, one row per image.
        "growth_bytes_per_image": round((peaks[large] - peaks[small]) / (large - small)),
        "goal": RSS_GOAL,
    }
    result["met"] = result["ratio"] <= RSS_GOAL
    return result


def run_child(n_images: int, model_dir: Path, out: Path) -> None:
    params = GenerateParams(n_per_class=n_images // N_CLASSES, device="cpu")
    generate(params, model_dir, out)
    print(tree_peak_kib(), flush=True)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} "
        f"({m['torch_threads']} threads), Python {m['python']}; {m['date']}; "
        f"load average at start {results['load_average_start']}, at end {results['load_average_end']} "
        "(other jobs share the cores: see the spread over rounds).",
        "",
        "| benchmark | figure | goal | met |",
        "|---|---|---|---|",
    ]
    for t in results["throughput"]:
        lines.append(
            f"| generate {t['image_size']} px {t['precision']} ({t['arch']}, width {t['width']}, {t['images']} images) "
            f"| {t['end_to_end_images_per_s']} img/s end to end vs {t['raw_images_per_s']} img/s raw PNG write: "
            f"**{t['ratio']:.3f}** (rounds {', '.join(f'{r:.2f}' for r in t['ratios'])}); CPU per image "
            f"{t['end_to_end_cpu_us_per_image']} vs {t['raw_cpu_us_per_image']} us: {t['cpu_ratio']:.2f} "
            f"| >= {t['goal']} | {'yes' if t['met'] else 'no'} |")
    mem = results["memory"]
    peaks = ", ".join(f"{int(n):,} images {mib:.0f} MiB" for n, mib in mem["peak_rss_mib"].items())
    lines.append(f"| peak RSS, {mem['image_size']} px {mem['arch']} | {peaks}: ratio **{mem['ratio']:.3f}** "
                 f"({mem['growth_bytes_per_image']} bytes per extra image: md5s and manifest rows) "
                 f"| <= {mem['goal']} | {'yes' if mem['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test, not for the record)")
    parser.add_argument("--child", nargs=3, metavar=("N", "MODEL_DIR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, model_dir, out = args.child
        run_child(int(n), Path(model_dir), Path(out))
        return

    results: dict = {"machine": machine_info(), "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    per_class = {28: 64, 64: 32} if args.quick else {28: 1024, 64: 256}
    rss_sizes = [1_000, 10_000] if args.quick else [10_000, 100_000]
    with tempfile.TemporaryDirectory(prefix="histosynth-bench-") as tmp:
        scratch = Path(tmp)
        precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
        results["throughput"] = [throughput(size, n, 2 if args.quick else 5, scratch, precision)
                                 for precision in precisions for size, n in per_class.items()]
        results["memory"] = memory(rss_sizes, scratch)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    table = markdown(results)
    print(table)
    if not args.quick:
        save_results("generation", table, results)


if __name__ == "__main__":
    main()
