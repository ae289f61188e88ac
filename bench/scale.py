"""Every stage at research scale: peak memory, seconds and disk against the number of images.

    .venv/bin/python bench/scale.py                          # the whole grid (many hours on 2 cores; resumes)
    .venv/bin/python bench/scale.py --grid 64:9000,30000     # some rows of it
    .venv/bin/python bench/scale.py --quick                  # 32 px, 270 and 540 images: smoke run, writes no results
    .venv/bin/python bench/scale.py --fresh                  # every row again, the recorded ones dropped

A PathMNIST-like folder source (9 classes of textured tiles, PNG) of N images at S px goes through
the ten stages of `dvc repro`, each in a process of its own as DVC runs it, with a recipe whose work
grows with N and nothing else (one GAN epoch, candidates and affine children in proportion to the
train split, one feature-net epoch, a benchmark of real_only and augmented with N / 64 steps). For
each stage it records the peak RSS (the largest process of the stage's tree, bench/stage_peak.py), the seconds and the bytes the stage wrote; then, per
stage and image size, how flat the peak RSS is from the smallest N to the largest (largest /
smallest), the seconds per image at each N and the least-squares line of seconds against N, and the
line's projection to 90,000 images of 224 px. The default grid is the issue's: 3k, 10k and 30k images
at 224 px, 9k, 30k and 90k at 64 px.

Resumable: a stage's row is written to ``--work``/rows.json (and the results) as soon as it ends, and a rerun starts
at the first stage without one (the projects stay in ``--work`` until their last stage is done,
then go: 30k images of 224 px take about 15 GB there, and TMPDIR needs 4.5 GB more). The results,
bench/results/scale.json and .md, are rewritten after every row, and take the near-copy search's
recall and time from bench/results/near_copy_search.json when it is there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: machine.py, stage_runs.py
from machine import RESULTS_DIR, code_revision, machine_info, save_results
from stage_runs import REPO, run_stage, write_folder_source, write_params

from histosynth.pipeline import NAMES, stage

CLASSES = tuple(f"tissue_{c}" for c in "abcdefghi")  # PathMNIST's 9 classes
DEFAULT_GRID = {224: [3000, 10000, 30000], 64: [9000, 30000, 90000]}
PROJECTED = (224, 90000)
TRAIN_SHARE = 0.7  # the folder source's default split: 15 % val, 15 % test


def recipe(n_images: int, size: int) -> dict:
    """params.yaml changes for N images of ``size`` px: every stage's work in proportion to N."""
    per_class = n_images // len(CLASSES)
    train_per_class = int(per_class * TRAIN_SHARE)
    steps = max(10, n_images // 64)
    return {
        "data": {"image_size": size},
        "augment": {"per_class": math.ceil(train_per_class * 1.25)},  # a quarter more: affine children
        "gan": {"arch": "dcgan", "epochs": 1, "width": 4, "batch_size": 64, "threads": 2, "checkpoint_every": 1,
                "probe": {"every": 1}},
        "generate": {"n_per_class": max(10, per_class // 10)},
        "qa": {"enforce": False, "max_per_class": max(5000, per_class), "cas": {"enabled": False},
               "featurenet": {"epochs": 1, "width": 8, "folds": 2}},
        "benchmark": {"arms": ["real_only", "augmented"], "seeds": [0], "steps": steps,
                      "eval_every": max(5, steps // 5), "threads": 2},
        "package": {"name": "scale", "source_licence": "generated test tiles"},
    }


def grid_item(item: str) -> tuple[int, list[int]]:
    """``SIZE:N,N,...`` -> (SIZE, [N, ...]); anything else is a usage error that shows the form."""
    size, _, counts = item.partition(":")
    try:
        parsed = int(size), [int(c) for c in counts.split(",") if c]
    except ValueError:
        parsed = None
    if parsed is None or not parsed[1] or min(parsed[1]) < len(CLASSES) * 10:
        raise argparse.ArgumentTypeError(f"{item!r}: expected SIZE:N,N,... (e.g. 64:9000,30000), each N at least "
                                         f"{len(CLASSES) * 10}")
    return parsed


def disk_mib(project: Path, name: str) -> float:
    total = 0
    for tracked in stage(name).outputs:
        path = project / tracked.path
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        # hard links (the package links the images of data/real) count once per stage, as `du` would
        total += sum(f.stat().st_size for f in files if f.stat().st_nlink == 1 or tracked.path.parts[:2] != ("data", "package"))
    return round(total / 2**20, 1)


def run_size(work: Path, size: int, n_images: int, rows: list[dict], save) -> None:
    done = {r["stage"] for r in rows if r["image_size"] == size and r["images"] == n_images}
    if done >= set(NAMES):
        return
    root = work / f"{size}px_{n_images}"
    source = write_folder_source(root / "source", CLASSES, n_images // len(CLASSES), size, seed=n_images)
    project = root / "project"
    if done and not (project / "params.yaml").is_file():  # rows from another machine, its project gone: all anew
        rows[:] = [r for r in rows if (r["image_size"], r["images"]) != (size, n_images)]
        done = set()
    if not done:
        shutil.rmtree(project, ignore_errors=True)
        write_params(project, {**recipe(n_images, size), "data": {**recipe(n_images, size)["data"],
                                                                  "source": f"folder:{source}"}})
    for name in NAMES:
        if name in done:
            continue
        load = os.getloadavg()[0]
        figures = run_stage(REPO, project, name)
        rows.append({"stage": name, "image_size": size, "images": n_images, **figures,
                     "disk_mib": disk_mib(project, name), "load_average": round(load, 2),
                     "code": code_revision()["commit"]})
        print(json.dumps(rows[-1]), flush=True)
        save(rows)
    shutil.rmtree(root)


def fits(rows: list[dict]) -> list[dict]:
    """Per stage and image size: RSS flatness, seconds per image, the line of seconds against images."""
    out = []
    for size in sorted({r["image_size"] for r in rows}):
        for name in NAMES:
            mine = sorted((r for r in rows if r["stage"] == name and r["image_size"] == size), key=lambda r: r["images"])
            if not mine:
                continue
            n = np.array([r["images"] for r in mine], float)
            seconds = np.array([r["seconds"] for r in mine])
            rss = [r["peak_rss_mib"] for r in mine]
            per_image = (seconds / n).tolist()
            fit = {"stage": name, "image_size": size, "images": n.astype(int).tolist(),
                   "peak_rss_mib_max": max(rss), "rss_largest_over_smallest": round(rss[-1] / rss[0], 3),
                   "ms_per_image": [round(1000 * s, 3) for s in per_image],
                   "ms_per_image_max_over_min": round(max(per_image) / min(per_image), 3),
                   # below 1: a fixed start-up shared by more images; above 1: work growing faster than N
                   "ms_per_image_largest_over_smallest": round(per_image[-1] / per_image[0], 3)}
            if all("cpu_seconds" in r for r in mine):  # rows measured before CPU seconds were recorded have none
                cpu_per_image = [r["cpu_seconds"] / r["images"] for r in mine]
                fit.update(cpu_ms_per_image=[round(1000 * s, 3) for s in cpu_per_image],
                           cpu_ms_per_image_max_over_min=round(max(cpu_per_image) / min(cpu_per_image), 3),
                           cpu_ms_per_image_largest_over_smallest=round(cpu_per_image[-1] / cpu_per_image[0], 3))
            if len(mine) >= 2:
                slope, intercept = np.polyfit(n, seconds, 1)
                fit.update(seconds_per_image_slope=round(float(slope), 5), seconds_at_zero=round(float(intercept), 1))
                if size == PROJECTED[0]:
                    fit["projected_seconds_at_90k"] = round(float(slope * PROJECTED[1] + intercept))
            out.append(fit)
    return out


def _cpu(row: dict, scale: float, spec: str = ",.1f") -> str:
    return format(row["cpu_seconds"] * scale, spec) if "cpu_seconds" in row else "-"


def markdown(rows: list[dict], fitted: list[dict], near_copy: dict | None, header: str) -> str:
    lines = [header, "", "| stage | px | images | peak RSS MiB | seconds | CPU seconds | ms / image | CPU ms / image "
             "| disk MiB | load | code |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['image_size']} | {r['images']:,} | {r['peak_rss_mib']:,.0f} | {r['seconds']:,.1f} | "
              f"{_cpu(r, 1)} | {1000 * r['seconds'] / r['images']:.2f} | {_cpu(r, 1000 / r['images'], '.2f')} | "
              f"{r['disk_mib']:,.0f} | {r['load_average']} | {r.get('code', '-')} |" for r in rows]
    lines += ["", "Per stage and size: peak RSS at the largest N over the smallest (goal: within 10 %), seconds per "
              "image at the largest N over the smallest (goal: within 25 %; below 1 where a fixed start-up is shared by more "
              "images; measured on an idle machine: wall and CPU seconds both grow with other jobs' load), the line of seconds against images and its projection to 90,000 "
              "images of 224 px.", "",
              "| stage | px | images | max peak RSS MiB | RSS largest / smallest | ms / image largest / smallest | "
              "CPU ms / image largest / smallest | s per image (slope) | projected s at 90k x 224 |",
              "|---|---|---|---|---|---|---|---|---|"]
    compared = [f for f in fitted if len(f["images"]) >= 2]
    lines += [f"| {f['stage']} | {f['image_size']} | {', '.join(f'{n:,}' for n in f['images'])} | "
              f"{f['peak_rss_mib_max']:,.0f} | {f['rss_largest_over_smallest']} | {f['ms_per_image_largest_over_smallest']} | "
              f"{f.get('cpu_ms_per_image_largest_over_smallest', '-')} | {f.get('seconds_per_image_slope', '-')} | "
              f"{f.get('projected_seconds_at_90k', '-')} |" for f in compared]
    if not compared:
        lines.append("| (no image size has two numbers of images yet) | | | | | | | | |")
    if near_copy:
        latest = {r["side"]: r for r in near_copy["scale"]}  # rows in the order measured: the last per size
        lines += ["", "Near-copy search ([near_copy_search.md](near_copy_search.md), code "
                  f"{near_copy['code']['commit']}): recall of the exact search's near copies "
                  + ", ".join(f"{r['near_copies_percentile_recall']:.3f} at {r['images']:,} images of {r['side']} px" for r in near_copy["recall"])
                  + "; time at 30k references with every flip and turn of 30k queries "
                  + ", ".join(f"{r['projected_seconds_for_all_queries'] / 60:.0f} min at {r['side']} px"
                              + (f" (projected from {r['queries_searched']:,} queries)" if r["queries_searched"] < r["references"] else "")
                              + f", code {r.get('code', near_copy['code']['commit'])}"
                              for r in latest.values()) + "."]
    return "\n".join(lines) + "\n"


def load_rows(rows_file: Path) -> list[dict]:
    """The rows measured so far: ``--work``'s, else the committed results' (a new machine resumes the grid
    where the last one stopped; delete a row from bench/results/scale.json to measure it again)."""
    if rows_file.is_file():
        return json.loads(rows_file.read_text())
    committed = RESULTS_DIR / "scale.json"
    return json.loads(committed.read_text())["rows"] if committed.is_file() else []


def write_results(rows: list[dict], rows_file: Path) -> None:
    """rows.json in the work folder, bench/results/scale.json and .md (the fits of every row measured)."""
    rows_file.write_text(json.dumps(rows, indent=1))
    fitted = fits(rows)
    near = RESULTS_DIR / "near_copy_search.json"
    near_copy = json.loads(near.read_text()) if near.is_file() else None
    measured = {size: sorted({r["images"] for r in rows if r["image_size"] == size}) for size in sorted({r["image_size"] for r in rows})}
    header = (f"# Every stage at scale\n\nMachine: {machine_info()['cpu']} ({os.cpu_count()} cores); each row "
              "names the code it ran. Command: `.venv/bin/python bench/scale.py --grid "
              f"{' '.join(f'{size}:' + ','.join(map(str, ns)) for size, ns in measured.items())}`; rows as they "
              "finished, load average at each stage's start (other jobs shared the machine when it is above 0).")
    save_results("scale", markdown(rows, fitted, near_copy, header),
                 {"machine": machine_info(), "code": code_revision(), "rows": rows, "fits": fitted,
                  "near_copy_search": near_copy})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", nargs="+", type=grid_item,
                        help="SIZE:N,N,... (default: 224:3000,10000,30000 64:9000,30000,90000)")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "scale")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fresh", action="store_true",
                        help="measure every row again (e.g. on an idle machine), not resuming the recorded ones")
    args = parser.parse_args()
    grid = {32: [270, 540]} if args.quick else dict(args.grid) if args.grid else DEFAULT_GRID
    work = Path(tempfile.mkdtemp(prefix="scale-")) if args.quick else args.work
    work.mkdir(parents=True, exist_ok=True)
    rows_file = work / "rows.json"
    rows = [] if args.quick or args.fresh else load_rows(rows_file)
    started = time.perf_counter()

    def save(rows: list[dict]) -> None:
        if not args.quick:
            write_results(rows, rows_file)

    try:
        for size, counts in grid.items():
            for n in sorted(counts):
                run_size(work, size, n, rows, save)
        if rows:
            save(rows)  # also when every row was there: the tables from this code
    finally:
        if args.quick:
            shutil.rmtree(work, ignore_errors=True)
    if args.quick:
        print(markdown(rows, fits(rows), None, f"# quick run ({time.perf_counter() - started:.0f} s)"))


if __name__ == "__main__":
    main()
