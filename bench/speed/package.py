"""Packaging benchmarks: throughput of the package stage on 100k images, and peak memory against N.

    .venv/bin/python bench/speed/package.py            # about 5 minutes on 2 cores
    .venv/bin/python bench/speed/package.py --quick    # 10k images, for a smoke run (writes nothing)
    .venv/bin/python bench/speed/package.py --verify   # `histosynth verify` alone, default and --deep (3 minutes)

The inputs are what the pipeline would hand the stage: 28 px PNGs (real encodes of textured
images, every file distinct) in an ingest-style real folder (20%, split 70/15/15) and a
generate-style synthetic folder (80%), 8 classes, with manifests, a GAN training record and a
passed QA verdict, in a temporary folder on the same filesystem as the package (so that hard
links are possible).

1. Throughput: the real package stage (``build_package``: plan, link or copy + MD5 + PNG size
   check of every image, MD5SUMS, metadata CSV/Parquet, card, SQL dumps, top-level MD5SUMS)
   with ``package.link`` auto (hard links) and copy, rounds alternating; figures are medians.
   Beside it, the image placement alone on 1 and on 2 worker threads (what the thread pool
   buys), the SQL dumps alone (``histosynth.package.database.package_database`` + ``write_dumps``), and
   ``histosynth verify`` of the package.
2. Memory: peak RSS of the package stage for 10k and 100k images, each in its own child
   process (``os.wait4`` gives that child's ru_maxrss).

Results go to bench/results/package.json and bench/results/package.md.

3. ``--verify``: ``histosynth verify`` of a 100k-image package as a user runs it (a child process,
   imports included), by default (every file re-hashed, the dumps through the top-level MD5SUMS;
   goal: 10 s or less on 2 cores) and with ``--deep`` (the dumps loaded and re-rendered), rounds
   alternating. Results: bench/results/verify.json and verify.md.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import code_revision, machine_info, save_results
from stage_peak import own_peak_kib

from histosynth.config import params_from_mapping
from histosynth.fsutil import unique_safe_names
from histosynth.generators.gan.models import get_recipe
from histosynth.generators.training.checkpoint import write_record
from histosynth.images import write_pngs
from histosynth.manifest import write_manifest
from histosynth.package.assemble import Job, place_files
from histosynth.package.collect import SOURCE_FILE, plan_rows
from histosynth.package.database import package_database
from histosynth.package.sql import check_dumps, write_dumps
from histosynth.package.stage import build_package
from histosynth.package.verify import verify_package
from histosynth.synthetic_set import SYNTHETIC_SET_KEY, synthetic_set_md5

IMAGE_SIZE = 28
CLASS_NAMES = [f"class {i}" for i in range(8)]
REAL_SHARE = 0.2
SPLIT_SHARES = {"train": 0.7, "val": 0.15, "test": 0.15}
ARCH = "dcgan"
CHECKPOINT_MD5 = "0" * 32
RSS_GOAL = 1.2
VERIFY_GOAL_S = 10.0


def textured(rng: np.random.Generator, index: int) -> np.ndarray:
    """A smooth colour texture (like a stained tile), its index written into the first pixels."""
    coarse = rng.normal(160, 40, (7, 7, 3))
    image = np.kron(coarse, np.ones((4, 4, 1))) + rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    image[0, :4, 0] = np.frombuffer(index.to_bytes(4, "big"), np.uint8)
    return image


def write_folder(root: Path, rows: list[dict], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for folder in {str(Path(row["path"]).parent) for row in rows}:
        (root / folder).mkdir(parents=True, exist_ok=True)
    items = ((root / row["path"], textured(rng, i)) for i, row in enumerate(rows))
    for row, md5 in zip(rows, write_pngs(items, workers=len(os.sched_getaffinity(0)))):
        row["md5"] = md5
    write_manifest(pd.DataFrame(rows), root)


def input_paths(root: Path) -> dict[str, Path]:
    return {"real": root / "real", "synthetic": root / "synthetic", "gan": root / "gan",
            "qa": root / "qa" / "metrics.json"}


def make_inputs(root: Path, n_images: int) -> None:
    """Real + synthetic folders, record.json and a passed QA verdict for ``n_images`` images."""
    folders = unique_safe_names(CLASS_NAMES)
    n_classes = len(CLASS_NAMES)
    real_per_class = round(n_images * REAL_SHARE / n_classes)
    synthetic_per_class = n_images // n_classes - real_per_class
    real_rows, synthetic_rows = [], []
    for label, (name, folder) in enumerate(zip(CLASS_NAMES, folders)):
        start = 0
        for split, share in SPLIT_SHARES.items():
            count = round(real_per_class * share) if split != "test" else real_per_class - start
            for i in range(start, start + count):
                real_rows.append(dict(id=f"real_{label}_{i:06d}", path=f"{split}/{folder}/real_{label}_{i:06d}.png",
                                      class_name=name, label=label, split=split, source="real", origin="bench"))
            start += count
        for i in range(synthetic_per_class):
            ident = f"syn_{folder}_{i:06d}"
            synthetic_rows.append(dict(id=ident, path=f"{folder}/{ident}.png", class_name=name, label=label,
                                       split="train", source="synthetic", origin=f"gan:{CHECKPOINT_MD5}", seed=0,
                                       latent_index=i, checkpoint_md5=CHECKPOINT_MD5, arch=ARCH, device="cpu",
                                       precision="fp32"))
    write_folder(root / "real", real_rows, seed=0)
    write_folder(root / "synthetic", synthetic_rows, seed=1)
    recipe = get_recipe(ARCH)
    write_record(root / "gan", {"arch": ARCH, "class_names": CLASS_NAMES, "n_classes": len(CLASS_NAMES), "epoch": 1,
                                "image_size": IMAGE_SIZE, "latent_dim": recipe.latent_dim, "width": recipe.width,
                                "params": {"batch_size": recipe.batch_size, "epochs": 1, "loss": recipe.loss,
                                           "g_lr": recipe.g_lr, "d_lr": recipe.d_lr}})
    qa = input_paths(root)["qa"]
    qa.parent.mkdir()
    qa.write_text(json.dumps({"passed": True, "classes": {name: {"passed": True} for name in CLASS_NAMES},
                              SYNTHETIC_SET_KEY: synthetic_set_md5(root / "synthetic")}))


def stage(inputs: dict[str, Path], out: Path, link: str) -> pd.DataFrame:
    params = params_from_mapping({"package": {"link": link}})
    return build_package(params, inputs["real"], inputs["synthetic"], inputs["gan"], inputs["qa"], out,
                         revision="bench")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) of ``fn()``.

    Dirty pages of earlier runs are flushed first: otherwise the kernel throttles this run's
    writes while it writes back the last run's files, and whichever run comes later loses.
    """
    os.sync()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(n: int, times: list[tuple[float, float]]) -> dict:
    walls = [wall for wall, _ in times]
    return {"seconds": round(statistics.median(walls), 2), "rounds_s": [round(w, 2) for w in walls],
            "images_per_s": round(n / statistics.median(walls)),
            # CPU seconds over wall seconds: about 2 when both cores are busy.
            "cores_busy": round(statistics.median(cpu / wall for wall, cpu in times), 2),
            # What the work costs whatever else runs on the machine (all threads, or the child process).
            "cpu_seconds": round(statistics.median(cpu for _, cpu in times), 2)}


def placement(inputs: dict[str, Path], scratch: Path, link: bool, workers: int) -> tuple[float, float]:
    plan = plan_rows(inputs["real"], inputs["synthetic"], ["train", "val", "test"])
    out = scratch / f"place_{link}_{workers}"
    for folder in plan["class_folder"].unique():
        (out / "images" / folder).mkdir(parents=True)
    jobs = (Job(Path(s), out / t, m) for s, t, m in zip(plan[SOURCE_FILE], plan["file_path"], plan["md5"]))
    result = timed(lambda: sum(1 for _ in place_files(jobs, len(plan), link, workers)))
    shutil.rmtree(out)
    return result


def throughput(inputs: dict[str, Path], n: int, rounds: int, scratch: Path) -> dict:
    runs: dict[str, list[tuple[float, float]]] = {"auto": [], "copy": []}
    for r in range(rounds):
        for link in ("auto", "copy") if r % 2 == 0 else ("copy", "auto"):
            out = scratch / f"package_{link}_{r}"
            runs[link].append(timed(lambda: stage(inputs, out, link)))
            if r < rounds - 1 or link != "auto":
                shutil.rmtree(out)
    kept = scratch / f"package_auto_{rounds - 1}"
    metadata = pd.read_parquet(kept / "metadata.parquet")
    record = json.loads((inputs["gan"] / "record.json").read_text())
    qa = json.loads(inputs["qa"].read_text())
    sql = [timed(lambda: write_dumps(package_database(metadata, record, qa, name="bench", version="1.0.0"),
                                     scratch / "sql")) for _ in range(rounds)]
    place: dict[str, list[tuple[float, float]]] = {f"{mode}_{w}": [] for mode in ("link", "copy") for w in (1, 2)}
    for r in range(rounds):
        for mode in ("link", "copy"):
            for workers in (1, 2) if r % 2 == 0 else (2, 1):
                place[f"{mode}_{workers}"].append(placement(inputs, scratch, mode == "link", workers))
    verify = [timed(lambda: verify_package(kept, deep=True)) for _ in range(rounds)]
    dumps_check = [timed(lambda: check_dumps(kept, metadata)) for _ in range(rounds)]
    sizes = {path.name: path.stat().st_size for path in (kept / "sql").iterdir()}
    result = {
        "images": n, "image_size": IMAGE_SIZE, "classes": len(CLASS_NAMES), "rounds": rounds,
        "stage": {mode: summary(n, times) for mode, times in runs.items()},
        "placement": {key: summary(n, times) for key, times in place.items()},
        "sql_dumps": summary(n, sql),
        "verify": summary(n, verify),
        "verify_dumps_check": summary(n, dumps_check),
        "package_mib": round(sum(p.stat().st_size for p in kept.rglob("*") if p.is_file()) / 2**20, 1),
        "sql_mib": {name: round(size / 2**20, 1) for name, size in sorted(sizes.items())},
    }
    print(json.dumps(result), flush=True)
    shutil.rmtree(kept)
    return result


def peak_rss(inputs_root: Path, out: Path) -> int:
    """Peak RSS (bytes) of a child process that runs the package stage on ``inputs_root``.

    The child reports its own VmHWM: the ru_maxrss that wait4 returns would include the RSS of
    this (large) process at the fork that started the child.
    """
    child = subprocess.run([sys.executable, __file__, "--child", str(inputs_root), str(out)], stdout=subprocess.PIPE,
                           text=True)
    if child.returncode != 0:
        raise SystemExit(f"the child packaging {inputs_root} failed (exit status {child.returncode})")
    shutil.rmtree(out)
    return int(child.stdout.split()[-1]) * 1024


def memory(inputs_by_n: dict[int, Path], scratch: Path) -> dict:
    peaks = {n: peak_rss(root, scratch / f"rss_{n}") for n, root in inputs_by_n.items()}
    small, large = min(peaks), max(peaks)
    result = {
        "peak_rss_mib": {str(n): round(p / 2**20, 1) for n, p in peaks.items()},
        "ratio": round(peaks[large] / peaks[small], 3),
        # What does grow: the metadata table (one row per image) and the SQL dumps' rows.
        "growth_bytes_per_image": round((peaks[large] - peaks[small]) / (large - small)),
        "goal": RSS_GOAL,
    }
    result["met"] = result["ratio"] <= RSS_GOAL
    print(json.dumps(result), flush=True)
    return result


def run_child(inputs_root: Path, out: Path) -> None:
    stage(input_paths(inputs_root), out, "auto")
    print(own_peak_kib())


def markdown(results: dict) -> str:
    m, t, mem = results["machine"], results["throughput"], results["memory"]
    rev = results["revision"]
    n = t["images"]

    def row(name: str, s: dict, note: str = "") -> str:
        return (f"| {name} | {s['seconds']} s ({', '.join(map(str, s['rounds_s']))}) | **{s['images_per_s']}** "
                f"| {s['cores_busy']} | {note} |")

    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; {m['date']}; "
        f"code {rev['commit']}{' + uncommitted src changes' if rev['uncommitted_src'] else ''}; "
        f"load average at start {results['load_average_start']}, at end {results['load_average_end']} "
        "(other jobs share the cores: see the spread over rounds).",
        "",
        f"{n:,} PNG images of {t['image_size']} px, {t['classes']} classes (20% real in train/val/test, "
        "80% synthetic); "
        f"package {t['package_mib']} MiB, of which SQL dumps "
        f"{', '.join(f'{k} {v} MiB' for k, v in t['sql_mib'].items())}. Medians over {t['rounds']} rounds; "
        "cores busy = process CPU seconds / wall seconds.",
        "",
        "| what | wall (rounds) | images/s | cores busy | notes |",
        "|---|---|---|---|---|",
        row("package stage, link: auto (hard links)", t["stage"]["auto"], "everything: images, metadata, card, SQL"),
        row("package stage, link: copy", t["stage"]["copy"], "everything: images, metadata, card, SQL"),
        row("image placement only, hard link, 1 thread", t["placement"]["link_1"], "link + read + MD5 + size"),
        row("image placement only, hard link, 2 threads", t["placement"]["link_2"], "as in the stage"),
        row("image placement only, copy, 1 thread", t["placement"]["copy_1"], "read + write + MD5 + size"),
        row("image placement only, copy, 2 threads", t["placement"]["copy_2"], "as in the stage"),
        row("SQL dumps only (3 dialects)", t["sql_dumps"], "histosynth.package package_database + write_dumps"),
        row("histosynth verify", t["verify"], "every file re-hashed, CSV vs Parquet, dumps vs metadata"),
        row("of which the dumps check", t["verify_dumps_check"], "histosynth.package.sql.check_dumps"),
        "",
        "| memory | " + " | ".join(f"{int(k):,} images" for k in mem["peak_rss_mib"]) + " | ratio | goal | met |",
        "|---|" + "---|" * len(mem["peak_rss_mib"]) + "---|---|---|",
        "| peak RSS, package stage | " + " | ".join(f"{v:.0f} MiB" for v in mem["peak_rss_mib"].values())
        + f" | **{mem['ratio']:.3f}** ({mem['growth_bytes_per_image']} bytes per extra image) | <= {mem['goal']} "
        f"| {'yes' if mem['met'] else 'no'} |",
    ]
    return "\n".join(lines) + "\n"


def verify_command(package: Path, deep: bool) -> tuple[float, float]:
    """Wall seconds of `histosynth verify` in a child process, and its CPU seconds (user + system)."""
    command = [sys.executable, "-m", "histosynth.cli", "verify", *(["--deep"] if deep else []), str(package)]
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"verify failed on the intact package:\n{done.stdout}\n{done.stderr}")
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def verify_bench(n: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="histosynth-bench-") as tmp:
        scratch = Path(tmp)
        seconds, _ = timed(lambda: make_inputs(scratch / "inputs", n))
        print(f"inputs: {n} images written in {seconds:.1f} s", flush=True)
        package = scratch / "package"
        stage(input_paths(scratch / "inputs"), package, "auto")
        os.sync()
        runs: dict[str, list[tuple[float, float]]] = {"default": [], "deep": []}
        for r in range(rounds):
            for mode in ("default", "deep") if r % 2 == 0 else ("deep", "default"):
                runs[mode].append(verify_command(package, deep=mode == "deep"))
                print(mode, runs[mode][-1], flush=True)
        files = sum(1 for p in package.rglob("*") if p.is_file())
    result = {"images": n, "files": files, "rounds": rounds, "goal_s": VERIFY_GOAL_S,
              **{mode: summary(n, times) for mode, times in runs.items()}}
    result["met"] = result["default"]["seconds"] <= VERIFY_GOAL_S
    return result


def verify_markdown(results: dict) -> str:
    m, v, rev = results["machine"], results["verify"], results["revision"]

    def row(name: str, s: dict, note: str) -> str:
        return (f"| {name} | **{s['seconds']} s** ({', '.join(map(str, s['rounds_s']))}) | {s['cpu_seconds']} s "
                f"| {s['images_per_s']} | {s['cores_busy']} | {note} |")

    return "\n".join([
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; {m['date']}; "
        f"code {rev['commit']}{' + uncommitted src changes' if rev['uncommitted_src'] else ''}; "
        f"load average at start {results['load_average_start']}, at end {results['load_average_end']} "
        "(other engineers' jobs share the 2 cores).",
        "",
        f"`histosynth verify` of an intact package of {v['images']:,} PNG images of {IMAGE_SIZE} px ({v['files']:,} "
        f"files), run as a user runs it (a new process: imports included); medians over {v['rounds']} rounds, "
        "cores busy = CPU seconds / wall seconds.",
        "",
        "| verify | wall (rounds) | CPU | images/s | cores busy | what it checks |",
        "|---|---|---|---|---|---|",
        row("default", v["default"], "every file re-hashed against the metadata and the MD5SUMS files; CSV vs "
            "Parquet; the dumps through the top-level MD5SUMS"),
        row("--deep", v["deep"], "the same, plus sql/sqlite.sql loaded and compared with the metadata and every "
            "dump re-rendered"),
        "",
        f"Goal: default verify of 100k images in <= {v['goal_s']:.0f} s on 2 cores: "
        f"{'met' if v['met'] else 'not met'} at this load; its {v['default']['cpu_seconds']} CPU seconds fit "
        f"{v['goal_s']:.0f} s of two idle cores {'' if v['default']['cpu_seconds'] <= 2 * v['goal_s'] else 'not '}"
        f"(hashing runs on both cores).",
    ]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k images, 1 round (smoke test, not for the record)")
    parser.add_argument("--verify", action="store_true", help="only `histosynth verify`, default and --deep")
    parser.add_argument("--child", nargs=2, metavar=("INPUTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(Path(args.child[0]), Path(args.child[1]))
        return
    if args.verify:
        results = {"machine": machine_info(), "revision": code_revision(),
                   "load_average_start": [round(x, 2) for x in os.getloadavg()]}
        results["verify"] = verify_bench(10_000 if args.quick else 100_000, 1 if args.quick else 3)
        results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        table = verify_markdown(results)
        print(table)
        if not args.quick:
            save_results("verify", table, results)
        return

    results: dict = {"machine": machine_info(), "revision": code_revision(),
                     "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    large, small, rounds = (10_000, 2_000, 1) if args.quick else (100_000, 10_000, 2)
    with tempfile.TemporaryDirectory(prefix="histosynth-bench-") as tmp:
        scratch = Path(tmp)
        inputs = {n: scratch / f"inputs_{n}" for n in (small, large)}
        for n, root in inputs.items():
            seconds, _ = timed(lambda: make_inputs(root, n))
            print(f"inputs: {n} images written in {seconds:.1f} s", flush=True)
        results["throughput"] = throughput(input_paths(inputs[large]), large, rounds, scratch)
        results["memory"] = memory(inputs, scratch)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    table = markdown(results)
    print(table)
    if not args.quick:
        save_results("package", table, results)


if __name__ == "__main__":
    main()
