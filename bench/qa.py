"""QA figures and timings on real data (issue 4). A benchmark, not a test: run it by hand.

    python bench/qa.py demo         # builtin:ihc demo tiles            -> bench/results/qa_demo.json
    python bench/qa.py bloodmnist   # BloodMNIST small-data run         -> bench/results/qa_bloodmnist.json
    python bench/qa.py scale        # 10k synthetic vs 10k real, 28 px  -> bench/results/qa_scale.json

``demo`` and ``bloodmnist`` train the feature net on a real folder and run QA against a
held-out real set ("real_split": real images the pipeline never saw, standing in for a
perfect generator) and against the broken sets the gates must catch: uniform noise, one
image repeated, copies of training images, images of another class, a colour shift.
Every figure, floor, threshold and verdict is recorded. ``scale`` times QA end to end with
the time split by metric. BloodMNIST comes from /work/shared/data/bloodmnist.npz (set
HISTOSYNTH_BLOODMNIST to use another copy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from machine import machine_info

from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.data import DataParams
from histosynth.data.ingest import ingest
from histosynth.dataset import load_image_set
from histosynth.entry import setup_logging
from histosynth.fsutil import unique_safe_names
from histosynth.generate.md5sums import write_md5sums
from histosynth.images import write_pngs
from histosynth.manifest import read_manifest, write_manifest
from histosynth.qa.report import json_ready
from histosynth.qa.run import run_qa

RESULTS = Path(__file__).parent / "results"
BLOODMNIST = Path(os.environ.get("HISTOSYNTH_BLOODMNIST", "/work/shared/data/bloodmnist.npz"))
BLOODMNIST_CLASSES = ("basophil", "eosinophil", "erythroblast", "immature granulocytes", "lymphocyte",
                      "monocyte", "neutrophil", "platelet")
QA_RUNS = 3
Split = tuple[np.ndarray, np.ndarray]  # (N, H, W, 3) uint8 images, (N,) labels


def write_folder(folder: Path, splits: dict[str, Split], class_names: tuple[str, ...], source: str) -> Path:
    """``real``: ``<split>/<class folder>/*.png``; ``synthetic``: ``<class folder>/*.png`` + MD5SUMS."""
    class_folders = unique_safe_names(class_names)
    rows, items = [], []
    for split, (images, labels) in splits.items():
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            rel = f"{class_folders[label]}/{split}_{i:06d}.png"
            rel = rel if source == "synthetic" else f"{split}/{rel}"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            items.append((folder / rel, image))
            rows.append({"id": f"{split}_{i:06d}", "path": rel, "class_name": class_names[label], "label": label,
                         "split": split, "source": source, "origin": "bench"})
    for row, md5 in zip(rows, write_pngs(iter(items), workers=2)):
        row["md5"] = md5
    manifest = pd.DataFrame(rows)
    if source == "synthetic":
        for class_folder in class_folders:
            mine = manifest[manifest["path"].str.startswith(f"{class_folder}/")]
            write_md5sums(folder / class_folder, zip(mine["path"].str.split("/").str[1], mine["md5"]))
    write_manifest(manifest, folder)
    return folder


def broken_sets(heldout: Split, train: Split, n_classes: int, seed: int) -> dict[str, Split]:
    """The real-vs-real set and the broken sets, each with the held-out set's class counts."""
    rng = np.random.default_rng(seed)
    images, labels = heldout
    first_of_class = {c: images[np.flatnonzero(labels == c)[0]] for c in np.unique(labels).tolist()}
    train_of_class = {c: train[0][train[1] == c] for c in range(n_classes)}
    rank_in_class = np.array([np.sum(labels[:i] == c) for i, c in enumerate(labels.tolist())])
    copies = np.stack([train_of_class[c][r % len(train_of_class[c])] for c, r in zip(labels.tolist(), rank_in_class)])
    return {
        "real_split": heldout,
        "uniform_noise": (rng.integers(0, 256, images.shape, dtype=np.uint8), labels),
        "one_image_repeated": (np.stack([first_of_class[c] for c in labels.tolist()]), labels),
        "train_copies": (copies, labels),
        "label_swap": (images, (labels + 1) % n_classes),
        "colour_shift": (np.clip(images.astype(np.int16) + np.array([20, 0, -20], np.int16), 0, 255)
                         .astype(np.uint8), labels),
    }


def evaluate_sets(work: Path, real: dict[str, Split], heldout: Split, class_names: tuple[str, ...],
                  qa_overrides: dict[str, Any]) -> dict[str, Any]:
    params = params_from_mapping({"qa": {"enforce": False, **qa_overrides}}).qa
    real_dir = write_folder(work / "real", real, class_names, "real")
    started = time.perf_counter()
    record = train_featurenet(params.featurenet, real_dir, work / "featurenet")
    out: dict[str, Any] = {
        "params": params.model_dump(mode="json"),
        "real_images": {split: len(labels) for split, (_, labels) in real.items()},
        "featurenet": {"seconds": round(time.perf_counter() - started, 1), "epochs_run": record["epochs_run"],
                       "best_epoch": record["best_epoch"], "test_accuracy": record["test_accuracy"],
                       "test_recall": record["test_recall"]},
        "sets": {},
    }
    for name, split in broken_sets(heldout, real["train"], len(class_names), params.seed).items():
        synthetic_dir = write_folder(work / name, {"train": split}, class_names, "synthetic")
        result = run_qa(params, real_dir, synthetic_dir, work / "featurenet", work / f"qa_{name}")
        out["sets"][name] = {
            "passed": result.passed,
            "failed": sorted({f"{r.gate.name}" for r in result.gates if r.failed}),
            "failed_per_class": {c: [r.gate.name for r in result.gates if r.failed and r.class_name == c]
                                 for c in class_names},
            "seconds": {k: round(v, 2) for k, v in result.timings.items()},
            "metrics": result.metrics,
        }
        print(f"{name:20s} passed={result.passed} failed gates: {out['sets'][name]['failed']}", flush=True)
    return out


def demo(work: Path) -> dict[str, Any]:
    """Demo tiles (params defaults). Tiles overlap their neighbours by half, so the held-out set
    must share no pixel with the training tiles, yet come from the same tissue: the train band
    is cut into 64 x 64 blocks coloured like a chessboard; tiles wholly inside black blocks
    train, tiles wholly inside white blocks are the held-out set, the others are dropped."""
    ingest(DataParams(), work / "ingest")
    splits = {s: load_image_set(work / "ingest", s) for s in ("train", "val", "test")}
    manifest = read_manifest(work / "ingest")
    yx = manifest.loc[manifest["split"] == "train", "id"].str.extract(r"_y(\d+)_x(\d+)$").astype(int).to_numpy()
    inside = ((yx % 64) + 32 <= 64).all(axis=1)
    black = (yx // 64).sum(axis=1) % 2 == 0
    keep, held = np.flatnonzero(inside & black), np.flatnonzero(inside & ~black)
    train = splits["train"]
    real = {"train": (train.images[keep], train.labels[keep]),
            **{s: (splits[s].images, splits[s].labels) for s in ("val", "test")}}
    return {"data": "builtin:ihc 32 px; the train band's tiles inside black 64-px chessboard blocks train, "
                    "those inside white blocks are the held-out set",
            **evaluate_sets(work, real, (train.images[held], train.labels[held]), train.class_names, {})}


def _bloodmnist() -> dict[str, np.ndarray]:
    if not BLOODMNIST.is_file():
        sys.exit(f"{BLOODMNIST} not found: set HISTOSYNTH_BLOODMNIST to a copy of MedMNIST's bloodmnist.npz")
    with np.load(BLOODMNIST) as npz:
        return {k: npz[k] for k in npz.files}


def _per_class(labels: np.ndarray, counts: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets, ``counts[i]`` per class for the i-th set (fewer where a class runs out)."""
    sets: list[list[np.ndarray]] = [[] for _ in counts]
    for c in np.unique(labels).tolist():
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for i, n in enumerate(counts):
            sets[i].append(idx[start : start + n])
            start += n
    return [np.sort(np.concatenate(s)) for s in sets]


def bloodmnist(work: Path) -> dict[str, Any]:
    """Small-data regime: 200 train, 50 val, 100 test real images per class; 200 held-out per class."""
    d, rng = _bloodmnist(), np.random.default_rng(0)
    y = {s: d[f"{s}_labels"].ravel().astype(np.int64) for s in ("train", "val", "test")}
    train_idx, held_idx = _per_class(y["train"], [200, 200], rng)
    (val_idx,), (test_idx,) = _per_class(y["val"], [50], rng), _per_class(y["test"], [100], rng)
    real = {"train": (d["train_images"][train_idx], y["train"][train_idx]),
            "val": (d["val_images"][val_idx], y["val"][val_idx]),
            "test": (d["test_images"][test_idx], y["test"][test_idx])}
    return {"data": "BloodMNIST 28 px: 200 train / 50 val / 100 test real images per class; the held-out "
                    "set is 200 other train images per class",
            **evaluate_sets(work, real, (d["train_images"][held_idx], y["train"][held_idx]), BLOODMNIST_CLASSES, {})}


def scale(work: Path) -> dict[str, Any]:
    """10,000 synthetic vs 10,000 real train (+ 1,712 val, 3,421 test) BloodMNIST images, timed."""
    d = _bloodmnist()
    y = {s: d[f"{s}_labels"].ravel().astype(np.int64) for s in ("train", "val", "test")}
    real = {"train": (d["train_images"][:10_000], y["train"][:10_000]),
            "val": (d["val_images"], y["val"]), "test": (d["test_images"], y["test"])}
    # 10k distinct images of the right classes: the last 1,959 train images, the rest turned 90 degrees.
    rest = slice(10_000, None)
    turned = np.rot90(d["train_images"][: 10_000 - len(y["train"][rest])], axes=(1, 2))
    synthetic = (np.concatenate([d["train_images"][rest], turned]),
                 np.concatenate([y["train"][rest], y["train"][: len(turned)]]))
    # The feature net is its own stage; a short recipe keeps this run about QA's time.
    params = params_from_mapping({"qa": {"enforce": False, "featurenet": {"epochs": 5}}}).qa
    real_dir = write_folder(work / "real", real, BLOODMNIST_CLASSES, "real")
    synthetic_dir = write_folder(work / "synthetic", {"train": synthetic}, BLOODMNIST_CLASSES, "synthetic")
    started = time.perf_counter()
    record = train_featurenet(params.featurenet, real_dir, work / "featurenet")
    featurenet_seconds = time.perf_counter() - started
    runs = []  # the machine is shared: time several runs, report each and the fastest one's split
    for _ in range(QA_RUNS):
        started = time.perf_counter()
        result = run_qa(params, real_dir, synthetic_dir, work / "featurenet", work / "qa")
        runs.append((time.perf_counter() - started, result.timings, os.getloadavg()[0]))
    fastest = min(runs, key=lambda run: run[0])
    return {
        "data": "BloodMNIST 28 px: real train 10,000, val 1,712, test 3,421; synthetic 10,000 "
                "(1,959 unused train images + 8,041 train images turned 90 degrees)",
        "qa_seconds_end_to_end": [round(seconds, 2) for seconds, _, _ in runs],
        "load_average_after_each_run": [round(load, 2) for _, _, load in runs],
        "qa_seconds_by_step_fastest_run": {k: round(v, 2) for k, v in fastest[1].items()},
        "featurenet_seconds (separate stage, 5 epochs)": round(featurenet_seconds, 1),
        "featurenet_test_accuracy": record["test_accuracy"],
        "goal_seconds": 60,
    }


def main() -> None:
    runs = {"demo": demo, "bloodmnist": bloodmnist, "scale": scale}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", choices=sorted(runs))
    args = parser.parse_args()
    setup_logging()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        result = {"machine": {**machine_info(), "load_average_at_start": os.getloadavg()}, **runs[args.run](Path(tmp))}
    result["seconds_total"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"qa_{args.run}.json"
    out.write_text(json.dumps(json_ready(result), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
