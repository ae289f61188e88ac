"""QA gate calibration and timing on real data (issues 4 and 11). A benchmark, not a test: run it by hand.

    python bench/studies/qa.py demo         # builtin:ihc demo tiles            -> bench/results/qa_demo.json
    python bench/studies/qa.py bloodmnist   # BloodMNIST, 100 train per class   -> bench/results/qa_bloodmnist.json
    python bench/studies/qa.py scale        # 10k synthetic vs 10k real, 28 px  -> bench/results/qa_scale.json
    python bench/studies/qa.py table        # bench/results/qa_calibration.md from the two calibration JSONs

``demo`` and ``bloodmnist`` train the feature net on a real folder, augment its train split with
the real augment stage, and run QA against a held-out real set ("real_split": real images the
pipeline never saw, standing in for a perfect generator) and against broken sets, each in
several severities: uniform noise, one image repeated (and a few images repeated), copies of
training images (exact, flipped or turned, noisy), copies of affine children, images of another
class (all or a share of them), a colour shift and a blur. For every set, class and gate the
figure, floor (mean, sd, quantiles), threshold, margin and verdict are recorded, together with
the *floor multiple* value / floor quantile, from which the floor factors are chosen: real sets
must stay well inside it, broken sets well outside. QA reads real train and val only.
BloodMNIST comes from /work/shared/data/bloodmnist.npz (set HISTOSYNTH_BLOODMNIST to use another copy).
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
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, machine_info
from scipy.ndimage import gaussian_filter

from histosynth.augment import augment
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.data import DataParams
from histosynth.data.ingest import ingest
from histosynth.dataset import load_image_set
from histosynth.dihedral import dihedral_variant
from histosynth.entry import setup_logging
from histosynth.fsutil import unique_safe_names
from histosynth.images import write_pngs
from histosynth.manifest import read_manifest, write_manifest
from histosynth.md5sums import write_md5sums
from histosynth.qa.floors import floor_keys
from histosynth.qa.registry import GATES
from histosynth.qa.report import json_ready
from histosynth.qa.run import run_qa

RESULTS = RESULTS_DIR
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


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _cycled(pool_of_class: dict[int, np.ndarray], labels: np.ndarray) -> np.ndarray:
    """One image per label, cycling through that class's pool."""
    rank = np.zeros(len(labels), int)
    seen: dict[int, int] = {}
    for i, c in enumerate(labels.tolist()):
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    return np.stack([pool_of_class[c][r % len(pool_of_class[c])] for c, r in zip(labels.tolist(), rank)])


def broken_sets(heldout: Split, train: Split, children: Split, n_classes: int, seed: int) -> dict[str, Split]:
    """The real-vs-real set and the broken sets, each with the held-out set's class counts."""
    rng = np.random.default_rng(seed)
    images, labels = heldout
    by_class = {c: images[labels == c] for c in range(n_classes)}
    train_of_class = {c: train[0][train[1] == c] for c in range(n_classes)}
    child_of_class = {c: children[0][children[1] == c] for c in range(n_classes)}
    copies = _cycled(train_of_class, labels)
    sets: dict[str, Split] = {
        "real_split": heldout,
        "uniform_noise": (rng.integers(0, 256, images.shape, dtype=np.uint8), labels),
        "one_image_repeated": (_cycled({c: v[:1] for c, v in by_class.items()}, labels), labels),
        "five_images_repeated": (_cycled({c: v[:5] for c, v in by_class.items()}, labels), labels),
        "train_copies": (copies, labels),
        "train_copies_flipped": (np.stack([dihedral_variant(im[None], 1 + i % 7)[0] for i, im in enumerate(copies)]),
                                 labels),
        "train_copies_noise_sd4": (_clip(copies + rng.normal(0, 4, copies.shape)), labels),
        "affine_child_copies": (_cycled(child_of_class, labels), labels),
        "label_swap": (images, (labels + 1) % n_classes),
    }
    for share in (0.1, 0.25):  # a share of each class's images replaced by distinct images of the next class
        wrong = images.copy()
        for c in range(n_classes):
            picked = np.flatnonzero((labels == c) & (rng.random(len(labels)) < share))
            donors = by_class[(c + 1) % n_classes]
            order = rng.permutation(len(donors))
            wrong[picked] = donors[np.resize(order, len(picked))]  # repeats only if the donor class is smaller
        sets[f"wrong_class_{int(share * 100)}pct"] = (wrong, labels)
    for shift in (4, 8, 16):
        sets[f"colour_shift_{shift}"] = (_clip(images.astype(np.int16) + np.array([shift, 0, -shift])), labels)
    for sigma in (0.5, 1.0):
        sets[f"blur_{sigma}"] = (_clip(gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0))), labels)
    return sets


def _figures(metrics: dict[str, Any], class_names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per class and gate: value, threshold, margin, verdict and the floor multiple (value / bad-side quantile)."""
    out: dict[str, dict[str, Any]] = {}
    for name in class_names:
        figures = metrics["classes"].get(name)
        if figures is None:
            continue
        per_gate = {}
        for gate in GATES:
            verdict = figures["gates"][gate.name]
            _, _, low, high = floor_keys(gate.metric)
            quantile = figures.get(low if gate.higher_is_better else high)
            value = figures.get(gate.metric)
            multiple = value / quantile if value is not None and quantile else None
            per_gate[gate.name] = {**verdict, "floor_multiple": multiple}
        out[name] = per_gate
    return out


def evaluate_sets(work: Path, real: dict[str, Split], heldout: Split, class_names: tuple[str, ...],
                  augment_per_class: int) -> dict[str, Any]:
    params = params_from_mapping({"qa": {"enforce": False}, "augment": {"per_class": augment_per_class}})
    real_dir = write_folder(work / "real", real, class_names, "real")
    started = time.perf_counter()
    record = train_featurenet(params.qa.featurenet, real_dir, work / "featurenet")
    augment(params.augment, real_dir, work / "augmented", work / "preview")
    children = load_image_set(work / "augmented")
    is_child = (read_manifest(work / "augmented")["source"] == "affine").to_numpy()
    out: dict[str, Any] = {
        "params": params.qa.model_dump(mode="json"),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "real_images": {split: len(labels) for split, (_, labels) in real.items()},
        "affine_children": int(is_child.sum()),
        "featurenet": {"seconds": round(time.perf_counter() - started, 1), "epochs_run": record["epochs_run"],
                       "best_epoch": record["best_epoch"], "val_accuracy": record["val_accuracy"],
                       "val_recall": record["val_recall"], "out_of_fold_recall": record["out_of_fold_recall"]},
        "sets": {},
    }
    sets = broken_sets(heldout, real["train"], (children.images[is_child], children.labels[is_child]),
                       len(class_names), params.qa.seed)
    for name, split in sets.items():
        synthetic_dir = write_folder(work / name, {"train": split}, class_names, "synthetic")
        result = run_qa(params.qa, real_dir, synthetic_dir, work / "featurenet", work / f"qa_{name}",
                        work / "augmented")
        failed = sorted({r.gate.name for r in result.gates if r.failed})
        out["sets"][name] = {
            "passed": result.passed,
            "failed": failed,
            "failed_per_gate": {g.name: sum(r.failed for r in result.gates if r.gate.name == g.name) for g in GATES},
            "gates": _figures(result.metrics, class_names),
            "seconds": {k: round(v, 2) for k, v in result.timings.items()},
        }
        print(f"{name:26s} passed={result.passed} failed gates: {failed}", flush=True)
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
                    "those inside white blocks are the held-out set; QA's val is the demo's val band",
            **evaluate_sets(work, real, (train.images[held], train.labels[held]), train.class_names, 200)}


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
    """The benchmark's small-data regime: 100 train images per class, the full val split; 200 held-out
    train images per class stand in for a perfect generator."""
    d, rng = _bloodmnist(), np.random.default_rng(0)
    y = {s: d[f"{s}_labels"].ravel().astype(np.int64) for s in ("train", "val", "test")}
    train_idx, held_idx = _per_class(y["train"], [100, 200], rng)
    (test_idx,) = _per_class(y["test"], [20], rng)  # written but never read by QA
    real = {"train": (d["train_images"][train_idx], y["train"][train_idx]),
            "val": (d["val_images"], y["val"]),
            "test": (d["test_images"][test_idx], y["test"][test_idx])}
    return {"data": "BloodMNIST 28 px: 100 train images per class, the full val split (1,712); the held-out "
                    "set is 200 other train images per class; augmented to 200 per class",
            **evaluate_sets(work, real, (d["train_images"][held_idx], y["train"][held_idx]), BLOODMNIST_CLASSES,
                            200)}


def scale(work: Path) -> dict[str, Any]:
    """10,000 synthetic vs 10,000 real train (+ 1,712 val) BloodMNIST images, timed."""
    d = _bloodmnist()
    y = {s: d[f"{s}_labels"].ravel().astype(np.int64) for s in ("train", "val", "test")}
    real = {"train": (d["train_images"][:10_000], y["train"][:10_000]),
            "val": (d["val_images"], y["val"]), "test": (d["test_images"][:10], y["test"][:10])}
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
        "data": "BloodMNIST 28 px: real train 10,000, val 1,712; synthetic 10,000 "
                "(1,959 unused train images + 8,041 train images turned 90 degrees: QA flags those as copies)",
        "qa_seconds_end_to_end": [round(seconds, 2) for seconds, _, _ in runs],
        "load_average_after_each_run": [round(load, 2) for _, _, load in runs],
        "qa_seconds_by_step_fastest_run": {k: round(v, 2) for k, v in fastest[1].items()},
        "featurenet_seconds (separate stage, 5 epochs)": round(featurenet_seconds, 1),
        "featurenet_val_accuracy": record["val_accuracy"],
        "goal_seconds": 60,
    }


def table() -> str:
    """The calibration table (markdown) from qa_demo.json and qa_bloodmnist.json."""
    lines = []
    for run in ("demo", "bloodmnist"):
        path = RESULTS / f"qa_{run}.json"
        if not path.is_file():
            lines.append(f"## {run}: not run (`python bench/studies/qa.py {run}`)\n")
            continue
        result = json.loads(path.read_text())
        machine = result["machine"]
        lines += [f"## {run}", "", f"{result['data']}. Machine: {machine['cpu']}, {machine['cores']} cores, torch "
                  f"{machine['torch']} ({result.get('torch_cpu_capability')}), {machine['date']}. Feature net val "
                  f"accuracy {result['featurenet']['val_accuracy']:.3f}.", "",
                  "Classes failing each gate (of " + str(len(next(iter(result['sets'].values()))['gates'])) + "), and "
                  "for the held-out real set its smallest margin per gate:", "",
                  "| set | " + " | ".join(g.name for g in GATES) + " |",
                  "|---|" + "---|" * len(GATES)]
        for name, outcome in result["sets"].items():
            cells = []
            for gate in GATES:
                failed = outcome["failed_per_gate"][gate.name]
                if name == "real_split":
                    margins = [g[gate.name]["margin"] for g in outcome["gates"].values() if g[gate.name]["margin"] is not None]
                    cells.append(f"{failed} (min margin {100 * min(margins):+.0f}%)" if margins else f"{failed}")
                else:
                    cells.append(f"**{failed}**" if failed else "0")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", "Floor multiples (value / floor quantile on the bad side; thresholds are floor_factor x 1): "
                  "real set's worst class vs each broken set's best class", "",
                  "| set | colour_kl (max) | fid (max) | label_consistency (min) | coverage (min) |", "|---|---|---|---|---|"]
        for name, outcome in result["sets"].items():
            cells = []
            for gate, worst in (("colour_kl", max), ("fid", max), ("label_consistency", min), ("coverage", min)):
                values = [g[gate]["floor_multiple"] for g in outcome["gates"].values() if g[gate]["floor_multiple"] is not None]
                pick = worst if name == "real_split" else {max: min, min: max}[worst]
                cells.append(f"{pick(values):.3g}" if values else "n/a")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    runs = {"demo": demo, "bloodmnist": bloodmnist, "scale": scale}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", choices=sorted(runs) + ["table"])
    args = parser.parse_args()
    if args.run == "table":
        out = RESULTS / "qa_calibration.md"
        out.write_text("# QA gate calibration (bench/studies/qa.py)\n\n" + table())
        print(f"wrote {out}")
        return
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
