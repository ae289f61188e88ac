"""What the duplicate check costs at ingest, and how its thresholds were chosen. Full BloodMNIST.

    .venv/bin/python bench/speed/ingest_duplicates.py                 # about 4 minutes on 2 cores
    .venv/bin/python bench/speed/ingest_duplicates.py --baseline REV  # compare with REV (default: where this branch left main)
    .venv/bin/python bench/speed/ingest_duplicates.py --quick         # one round, 2,000 images: smoke run, writes nothing

- **Time and memory**: the whole ``ingest`` of ``medmnist:bloodmnist`` (17,092 images of 28 px,
  read from /work/shared/data) with this working tree and with ``--baseline`` (its ``src/``
  taken by ``git archive``), each in a child process, rounds alternating; wall time, the time
  spent in the duplicate check, and peak RSS. The same at 250 train / 50 val / 50 test images
  per class, so that what the check adds per image shows as the difference of the two.
- **Calibration**: 1,000 BloodMNIST train images against copies of themselves (JPEG quality 75
  and 50, 10% brighter, resampled, sd-3 noise, rotated + JPEG, shifted one pixel): the distance
  (``data.duplicates.near_max_distance``), the hash bits changed, and the share found at the
  defaults; and what the check finds in the official splits.

Results: bench/results/ingest_duplicates.json and .md. HISTOSYNTH_DATA_ROOT: another folder
holding bloodmnist.npz.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import code_revision, machine_info, save_results
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data"))
ROUNDS = 3
SMALL_CAPS = (250, 50)  # train, val/test images per class of the small run

CHILD = """
import json, resource, sys, time
from histosynth.config.data import DataParams
import histosynth.data.ingest as ingest_module
caps = json.loads(sys.argv[2])
spent = [0.0]
check = getattr(ingest_module, "DuplicateCheck", None)
if check is not None:
    original = check.check
    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started
    check.check = timed
params = DataParams(source="medmnist:bloodmnist", root=sys.argv[3], image_size=28, max_per_class=caps[0],
                    max_eval_per_class=caps[1])
started = time.perf_counter()
manifest = ingest_module.ingest(params, sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started, "check_seconds": spent[0], "images": len(manifest),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_ingest(src: Path, caps: tuple[int, int], work: Path) -> dict:
    out = work / "real"
    env = {**os.environ, "PYTHONPATH": str(src), "HISTOSYNTH_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), json.dumps(caps), str(DATA_ROOT)], env=env,
                          capture_output=True, text=True, check=True)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def baseline_src(revision: str, work: Path) -> tuple[Path, str]:
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", revision, "src"], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    return work / "src", commit


def timing(revision: str, rounds: int, caps_list: list[tuple[int, int]]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "base").mkdir()
        old_src, commit = baseline_src(revision, work / "base")
        runs: dict = {"baseline": {"revision": commit}, "this": {}}
        for caps in caps_list:
            key = "full" if caps == (0, 0) else f"{caps[0]}/{caps[1]} per class"
            for name in ("baseline", "this"):
                runs[name][key] = []
            for r in range(rounds):
                for name, src in (("baseline", old_src), ("this", REPO / "src")):
                    result = run_ingest(src, caps, work)
                    result["load_average"] = os.getloadavg()[0]
                    runs[name][key].append(result)
                    print(f"{key:22s} round {r} {name:8s} {result['seconds']:6.1f} s (check {result['check_seconds']:.1f} s)"
                          f" {result['peak_rss_mib']:.0f} MiB, load {result['load_average']:.1f}", flush=True)
        return runs


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


PERTURBATIONS = {
    "JPEG quality 75": lambda x, rng: jpeg(x, 75),
    "JPEG quality 50": lambda x, rng: jpeg(x, 50),
    "10% brighter + 10 grey levels": lambda x, rng: np.clip(x * 1.1 + 10, 0, 255).astype(np.uint8),
    "resampled (2x up, back down)": lambda x, rng: np.asarray(
        Image.fromarray(x).resize((56, 56), Image.BICUBIC).resize((28, 28), Image.LANCZOS)),
    "noise, sd 3 grey levels": lambda x, rng: np.clip(x + rng.normal(0, 3, x.shape), 0, 255).astype(np.uint8),
    "rotated 90 degrees + JPEG 75": lambda x, rng: jpeg(np.rot90(x), 75),
    "shifted one pixel": lambda x, rng: np.roll(x, 1, axis=1),
}


def calibration(n: int) -> dict:
    from histosynth.config.data import DuplicateParams
    from histosynth.data.duplicates import HASH_MAX_BITS, pixel_distances
    from histosynth.data.fingerprint import fingerprint

    threshold = DuplicateParams().near_max_distance
    images = np.load(DATA_ROOT / "bloodmnist.npz")["train_images"][:n]
    hashes = fingerprint(images).hashes
    rng = np.random.default_rng(0)
    out = {"images": n, "near_max_distance": threshold, "hash_max_bits": HASH_MAX_BITS, "copies": {}}
    for name, make in PERTURBATIONS.items():
        copies = np.stack([make(x, rng) for x in images])
        distance = pixel_distances(copies, images)[0]
        bits = np.bitwise_count(fingerprint(copies).hashes ^ hashes)
        found = (distance <= threshold) & (bits <= HASH_MAX_BITS)
        out["copies"][name] = {"distance_median": round(float(np.median(distance)), 3),
                               "distance_max": round(float(distance.max()), 3),
                               "hash_bits_max": int(bits.max()), "found_share": round(float(found.mean()), 4)}
        print(f"{name:32s} distance {np.median(distance):.3f} (max {distance.max():.3f}), bits <= {bits.max()},"
              f" found {found.mean():.1%}", flush=True)
    return out


def official_splits() -> dict:
    """Every pair the check finds in the official splits, and the closest pair of distinct images it rejects."""
    from histosynth.config.data import DataParams
    from histosynth.data.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp:
        params = DataParams(source="medmnist:bloodmnist", root=str(DATA_ROOT), image_size=28)
        ingest(params, Path(tmp) / "real", Path(tmp) / "report")
        metrics = json.loads((Path(tmp) / "report" / "duplicates.json").read_text())
        pairs = (Path(tmp) / "report" / "duplicates.tsv").read_text().splitlines()
    return {"pairs": metrics["pairs"], "list": pairs, "closest_distinct": closest_distinct()}


def closest_distinct() -> dict:
    """The smallest distance among hash candidates that are not confirmed (all of BloodMNIST)."""
    from histosynth.data.duplicates import HASH_MAX_BITS, pixel_distances
    from histosynth.data.fingerprint import fingerprint_all

    arrays = np.load(DATA_ROOT / "bloodmnist.npz")
    images = np.concatenate([arrays[f"{s}_images"] for s in ("train", "val", "test")])
    hashes = fingerprint_all(len(images), lambda i: images[i], 28).hashes
    distances = []
    for start in range(0, len(images), 512):
        bits = np.bitwise_count(hashes[start:start + 512, None] ^ hashes[None, :])
        rows, cols = np.nonzero(bits <= HASH_MAX_BITS)
        keep = cols > rows + start
        a, b = rows[keep] + start, cols[keep]
        for s in range(0, len(a), 4096):
            distances.append(pixel_distances(images[a[s:s + 4096]], images[b[s:s + 4096]])[0])
    d = np.sort(np.concatenate(distances))
    nonzero = d[d > 0]
    return {"candidates": int(len(d)), "smallest_nonzero": [round(float(x), 3) for x in nonzero[:5]]}


def table(results: dict) -> str:
    lines = ["# Duplicate check at ingest (BloodMNIST, 28 px)", "",
             f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"{results['machine']['memory_gib']} GiB; {results['machine']['date']}; revision "
             f"{results['revision']['commit']} against {results['timing']['baseline']['revision']}.", "",
             "| run | images | baseline wall s (rounds) | this wall s (rounds) | of it: check s | peak RSS MiB baseline / this |",
             "|---|---|---|---|---|---|"]
    for key in results["timing"]["this"]:
        base, this = results["timing"]["baseline"][key], results["timing"]["this"][key]
        base_s, this_s = [r["seconds"] for r in base], [r["seconds"] for r in this]
        lines.append(f"| {key} | {this[0]['images']} | {np.median(base_s):.1f} ({_listed(base_s)}) | "
                     f"{np.median(this_s):.1f} ({_listed(this_s)}) | "
                     f"{np.median([r['check_seconds'] for r in this]):.1f} | "
                     f"{max(r['peak_rss_mib'] for r in base):.0f} / {max(r['peak_rss_mib'] for r in this):.0f} |")
    cal = results["calibration"]
    lines += ["", f"Copies of {cal['images']} train images (found: distance <= {cal['near_max_distance']} and hash "
              f"within {cal['hash_max_bits']} bits):", "",
              "| copy | distance median (max) | hash bits max | found |", "|---|---|---|---|"]
    for name, c in cal["copies"].items():
        lines.append(f"| {name} | {c['distance_median']} ({c['distance_max']}) | {c['hash_bits_max']} | "
                     f"{c['found_share']:.1%} |")
    found = results["official_splits"]
    lines += ["", "Found in the official splits (per split pair: images, of them exact, with another label):", ""]
    lines += [f"- {k}: {v['images']} ({v['exact']} exact, {v['conflicting_labels']} conflicting)"
              for k, v in found["pairs"].items()]
    lines += ["", f"Closest distinct images among {found['closest_distinct']['candidates']} hash candidates: "
              f"{found['closest_distinct']['smallest_nonzero']} (the near copy included).", ""]
    return "\n".join(lines)


def _listed(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=None, help="git revision to compare with (default: git merge-base HEAD main)")
    parser.add_argument("--quick", action="store_true", help="one round of a small run, no calibration; writes nothing")
    args = parser.parse_args()
    if args.baseline is None:
        args.baseline = subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True, text=True,
                                       check=True).stdout.strip()
    if args.quick:
        print(json.dumps(timing(args.baseline, 1, [SMALL_CAPS]), indent=2))
        return
    results = {"machine": machine_info(), "revision": code_revision(),
               "timing": timing(args.baseline, ROUNDS, [(0, 0), SMALL_CAPS]),
               "calibration": calibration(1000), "official_splits": official_splits()}
    save_results("ingest_duplicates", table(results), results)
    print(table(results))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
