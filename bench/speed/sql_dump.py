"""SQL dump benchmark: seconds per dialect for 100k images, and whether a dump's memory grows with N.

    .venv/bin/python bench/speed/sql_dump.py            # 100k images, about two minutes on 2 cores
    .venv/bin/python bench/speed/sql_dump.py --quick    # 10k images, smoke run, writes nothing

A package's metadata of N images (8 classes, a fifth real in train/val/test, the rest
synthetic) goes through histosynth.package.sql as the package stage and `histosynth verify` use it:
package_database, write_dump per dialect (wall and CPU seconds, size), check_dumps (load
sqlite.sql into SQLite, compare with the metadata, render all three dumps again). Memory: the
Python heap's peak (tracemalloc) while writing the SQLite dump of N/10 and of N images; the
metadata itself is in memory before, so a constant dump needs the same peak for both.

Results go to bench/results/sql_dump.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pandas as pd
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import code_revision, machine_info, save_results

from histosynth.fsutil import unique_safe_names
from histosynth.package.database import package_database
from histosynth.package.sql import DIALECTS, check_dumps
from histosynth.package.sql.dump import write_dump

CLASSES = ("basophil", "eosinophil", "erythroblast", "immature granulocytes", "lymphocyte", "monocyte",
           "neutrophil", "platelet")
RUN = hashlib.md5(b"generator.pt").hexdigest()


def package_metadata(n_images: int) -> pd.DataFrame:
    """Metadata rows in the package's order and schema, made up but shaped like a real package's."""
    label = pd.Series(range(n_images)) * len(CLASSES) // n_images
    index = pd.Series(range(n_images)) - label * n_images // len(CLASSES)
    synthetic = index >= (n_images // len(CLASSES)) // 5
    folders = pd.Series(unique_safe_names(CLASSES))[label].reset_index(drop=True)
    ids = ("real_" + label.astype(str) + "_" + index.astype(str).str.zfill(6)).where(
        ~synthetic, "syn_" + folders + "_" + index.astype(str).str.zfill(6))
    frame = pd.DataFrame({
        "id": ids,
        "file_path": "images/" + folders + "/" + ids + ".png",
        "class_name": pd.Series(CLASSES)[label].reset_index(drop=True),
        "class_folder": folders,
        "label": label.astype("int64"),
        "source": synthetic.map({True: "synthetic", False: "real"}),
        "split": pd.Series(["train", "val", "test"])[index % 3].reset_index(drop=True).where(~synthetic, "train"),
        "md5": [hashlib.md5(i.encode()).hexdigest() for i in ids],
        "width": 64, "height": 64,
        "origin": ("bloodmnist.npz:train:" + index.astype(str)).where(~synthetic, f"gan:{RUN}"),
        "generator_run": pd.Series(RUN, index=ids.index).where(synthetic),
        "arch": pd.Series("dcgan", index=ids.index).where(synthetic),
        "seed": pd.Series(0, index=ids.index, dtype="Int64").where(synthetic),
        "latent_index": index.astype("Int64").where(synthetic),
    })
    return frame


def gan_record() -> dict:
    params = {"arch": "dcgan", "batch_size": 64, "betas": [0.5, 0.999], "d_lr": 2e-4, "diffaugment": [],
              "ema": 0.999, "epochs": 150, "g_lr": 2e-4, "latent_dim": 128, "loss": "bce", "lr_step": None,
              "n_critic": 1, "seed": 0, "train_on": "augmented", "weight_decay": 0.0, "width": 32}
    return {"arch": "dcgan", "class_names": list(CLASSES), "epoch": 150, "image_size": 64, "latent_dim": 128,
            "n_classes": len(CLASSES), "optimizer": "adam", "params": params, "width": 32}


def timed(fn):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def dump_heap_peak_mib(n_images: int, out: Path) -> float:
    db = package_database(package_metadata(n_images), gan_record(), None)
    tracemalloc.start()
    try:
        write_dump(db, "sqlite", out)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k images (smoke test, not for the record)")
    args = parser.parse_args()
    n_images = 10_000 if args.quick else 100_000
    load_start = [round(x, 2) for x in os.getloadavg()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="histosynth-bench-sql-") as tmp:
        package = Path(tmp)
        metadata = package_metadata(n_images)
        db, wall, cpu = timed(lambda: package_database(metadata, gan_record(), None))
        rows.append(("package_database", wall, cpu, ""))
        for dialect in DIALECTS:
            path, wall, cpu = timed(lambda: write_dump(db, dialect, package / "sql" / f"{dialect}.sql"))
            rows.append((f"write {dialect}.sql", wall, cpu, f"{path.stat().st_size / 2**20:.1f} MiB"))
        problems, wall, cpu = timed(lambda: check_dumps(package, metadata))
        assert problems == [], problems
        rows.append(("check_dumps (verify)", wall, cpu, "load sqlite.sql, compare, render 3 dumps"))
        peaks = {n: dump_heap_peak_mib(n, package / "memory.sql") for n in (n_images // 10, n_images)}
    load_end = [round(x, 2) for x in os.getloadavg()]

    machine = machine_info()
    revision = code_revision()
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, Python "
        f"{machine['python']}; {machine['date']}; commit {revision['commit']}"
        + (f" (uncommitted: {', '.join(revision['uncommitted_src'])})" if revision["uncommitted_src"] else "")
        + f"; load average at start {load_start}, at end {load_end} (the cores are shared: CPU seconds are "
        "the steadier figure).",
        "",
        f"{n_images:,} images, 8 classes, {int((metadata['source'] == 'synthetic').sum()):,} synthetic; "
        "500 rows per INSERT.",
        "",
        "| step | wall s | CPU s | images/s (wall) | note |",
        "|---|---|---|---|---|",
        *(f"| {step} | {wall:.1f} | {cpu:.1f} | {n_images / wall:,.0f} | {note} |" for step, wall, cpu, note in rows),
        "",
        "Heap peak while writing sqlite.sql (tracemalloc, metadata already in memory): "
        + ", ".join(f"{n:,} images {mib:.1f} MiB" for n, mib in peaks.items())
        + f"; ratio {peaks[n_images] / peaks[n_images // 10]:.2f} for 10x the images.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    if not args.quick:
        save_results("sql_dump", table)


if __name__ == "__main__":
    main()
