"""The near-copy search at scale: the approximate search (histosynth.qa.ann) against the exact one.

    nice -n 10 .venv/bin/python bench/speed/near_copy_search.py            # about 16 minutes on 2 loaded cores
    nice -n 10 .venv/bin/python bench/speed/near_copy_search.py --quick    # 1,000 images: smoke run, writes nothing
    nice -n 10 .venv/bin/python bench/speed/near_copy_search.py --scale-only  # the 30k rows again, beside the old ones

BloodMNIST (28 px, upsampled bilinearly), through memorisation.nearest_originals, the function QA's
and curate's near-copy tests call, with every image its own original:

- **Recall at 10k**: reference 10,000 train images; queries 10,000: the other train images, val,
  test, blends of two images (new cells, not copies) and 300 planted near copies of references
  (sd-4 noise; 3 brighter plus sd-2 noise; turned a quarter plus sd-3 noise). Exact and
  approximate search, every flip and turn of the queries at 32 px, variants 0 and 1 at 64 px (the
  exact search at 64 px with all eight would take 10 minutes). Near copies: ratio d1 / d2 at most
  the 1st percentile of the real held-out queries' exact ratios (QA's rule) or at most 1/3 (the
  literature's); recall = the share of the exact search's near copies the approximate one flags.
  Also the share of queries whose nearest original (and its distance) and second distance agree.
- **Crossover**: seconds of each search at N = R = 1k, 2k, 4k (one variant), 32 and 64 px.
- **30k**: the approximate search's seconds for 30,000 references (BloodMNIST's 17,092 images and
  blends) and 30,000 queries with all eight variants at 64 px, and at 224 px for a share of the
  queries, projected to all of them.

Results: bench/results/near_copy_search.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info, save_results

from histosynth.dihedral import dihedral_variant
from histosynth.qa import ann, knn
from histosynth.qa.metrics import memorisation
from histosynth.qa.pixel_space import PixelVectors

DATA = Path(os.environ.get("HISTOSYNTH_DATA_ROOT", "/work/shared/data")) / "bloodmnist.npz"
PLANTED = 300


def upsample(images: np.ndarray, side: int) -> np.ndarray:
    if images.shape[1] == side:
        return images
    out = np.empty((len(images), side, side, 3), np.uint8)
    for start in range(0, len(images), 512):
        x = torch.from_numpy(images[start : start + 512]).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        out[start : start + 512] = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


def blends(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(images), (2, n))
    return ((images[a].astype(np.uint16) + images[b]) // 2).astype(np.uint8)


def noisy(images: np.ndarray, sd: float, shift: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(images.astype(np.float64) + shift + rng.normal(0, sd, images.shape)), 0, 255).astype(np.uint8)


def recall_sets(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reference, queries, planted source of each query (-1: none), real held-out mask) at 28 px."""
    data = np.load(DATA)
    train = data["train_images"]
    reference = train[:n]
    others = np.concatenate([train[n:], data["val_images"], data["test_images"]])[: n - PLANTED]
    heldout = np.zeros(n, bool)
    heldout[: len(others)] = True
    rest = n - PLANTED - len(others)
    rng = np.random.default_rng(0)
    sources = rng.choice(n, PLANTED, replace=False)
    third = PLANTED // 3
    planted = np.concatenate([
        noisy(reference[sources[:third]], 4, 0, rng),
        noisy(reference[sources[third : 2 * third]], 2, 3, rng),
        noisy(dihedral_variant(reference[sources[2 * third :]], 3), 3, 0, rng),  # query variant 1 turns it back
    ])
    queries = np.concatenate([others, blends(train[:n], rest, 1), planted])
    source = np.full(n, -1)
    source[n - PLANTED :] = sources
    return reference, queries, source, heldout


def search(reference: np.ndarray, queries: np.ndarray, variants: list[int], approximate: bool):
    started = time.perf_counter()
    found = memorisation.nearest_originals([PixelVectors(queries, v) for v in variants], PixelVectors(reference),
                                           np.arange(len(reference)).astype(str), approximate=approximate)
    return found, time.perf_counter() - started


def recall_at(side: int, n: int, variants: list[int]) -> dict:
    reference, queries, source, heldout = recall_sets(n)
    reference, queries = upsample(reference, side), upsample(queries, side)
    exact, exact_s = search(reference, queries, variants, False)
    approx, approx_s = search(reference, queries, variants, True)
    threshold = float(np.percentile(exact.ratios[heldout], 1.0))
    planted = source >= 0
    out = {"side": side, "images": n, "variants": variants, "exact_seconds": round(exact_s, 1),
           "approximate_seconds": round(approx_s, 1), "heldout_ratio_threshold": threshold,
           "nearest_agrees": float(np.mean(approx.index == exact.index)),
           "d1_agrees": float(np.mean(approx.d1 == exact.d1)), "d2_agrees": float(np.mean(approx.d2 == exact.d2)),
           "planted_found": float(np.mean(approx.index[planted] == source[planted])),
           "planted_found_exact": float(np.mean(exact.index[planted] == source[planted]))}
    for name, limit in (("percentile", threshold), ("third", 1 / 3)):
        flagged_exact, flagged_approx = exact.ratios <= limit, approx.ratios <= limit
        out[f"near_copies_{name}_exact"] = int(flagged_exact.sum())
        out[f"near_copies_{name}_recall"] = float(flagged_approx[flagged_exact].mean())
        out[f"near_copies_{name}_extra"] = int((flagged_approx & ~flagged_exact).sum())
    print(out, flush=True)
    return out


def crossover(sides: list[int], sizes: list[int]) -> list[dict]:
    train = np.load(DATA)["train_images"]
    rows = []
    for side in sides:
        for n in sizes:
            reference, queries = upsample(train[:n], side), upsample(train[n : 2 * n], side)
            seconds = {}
            for name, approximate in (("exact", False), ("approximate", True)):
                started = time.perf_counter()
                ann.searcher(PixelVectors(reference), n, approximate).nearest(PixelVectors(queries), 2)
                seconds[name] = round(time.perf_counter() - started, 2)
            rows.append({"side": side, "images": n, "work": float(n) * n * side * side * 3, **seconds})
            print(rows[-1], flush=True)
    return rows


def at_scale(side: int, n: int, query_share: float) -> dict:
    data = np.load(DATA)
    real = np.concatenate([data["train_images"], data["val_images"], data["test_images"]])
    images = np.concatenate([real, blends(real, max(0, n - len(real)), 2)])[:n]
    reference = upsample(images, side)
    queries = upsample(blends(real, int(n * query_share), 3), side)
    del images
    started = time.perf_counter()
    search_ = ann.ApproximateSearch(PixelVectors(reference))
    build = time.perf_counter() - started
    started = time.perf_counter()
    for variant in range(8):
        search_.nearest(PixelVectors(queries, variant), 2)
    searched = time.perf_counter() - started
    projected = build + searched / query_share
    out = {"side": side, "references": n, "queries_searched": len(queries), "variants": 8,
           "build_seconds": round(build, 1), "search_seconds": round(searched, 1),
           "projected_seconds_for_all_queries": round(projected, 1), "index_mib": round(search_.index_bytes / 2**20, 1),
           "index_bytes_per_image": search_.index_bytes // n}
    print(out, flush=True)
    return out


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"# Near-copy search: approximate (faiss IVF-Flat + exact re-ranking) vs exact\n",
             f"{m['date']}, {m['cpu']}, {m['cores']} cores, load {results['load_before']} -> {results['load_after']}, "
             f"code {results['code']['commit']}; {results['seconds_total']:.0f} s in all"
             + (f" (the scale rows; the recall and crossover tables are from code {results['tables_code']}, "
                "an earlier run)" if results.get("tables_code", results["code"]["commit"]) != results["code"]["commit"]
                else "") + ".\n",
             "## Recall at 10k (BloodMNIST, 300 planted near copies)\n",
             "| px | variants | exact s | approx s | near copies (1st pct) | recall | extra | near copies (1/3) | recall | "
             "extra | planted found | nearest agrees | d2 agrees |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["recall"]:
        lines.append(f"| {r['side']} | {len(r['variants'])} | {r['exact_seconds']} | {r['approximate_seconds']} | "
                     f"{r['near_copies_percentile_exact']} | {r['near_copies_percentile_recall']:.4f} | "
                     f"{r['near_copies_percentile_extra']} | {r['near_copies_third_exact']} | "
                     f"{r['near_copies_third_recall']:.4f} | {r['near_copies_third_extra']} | {r['planted_found']:.4f} | "
                     f"{r['nearest_agrees']:.4f} | {r['d2_agrees']:.4f} |")
    lines += ["\n## Crossover (one variant, N = R)\n", "| px | images | work (N x R x D) | exact s | approx s |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['side']} | {r['images']} | {r['work']:.2g} | {r['exact']} | {r['approximate']} |"
              for r in results["crossover"]]
    lines += ["\n## Approximate search at scale (8 variants of every query)\n",
              "| px | references | queries searched | build s | search s | projected s, all 30k queries | index MiB | "
              "bytes / image | code |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['side']} | {r['references']} | {r['queries_searched']} | {r['build_seconds']} | "
              f"{r['search_seconds']} | {r['projected_seconds_for_all_queries']} | {r['index_mib']} | "
              f"{r['index_bytes_per_image']} | {r.get('code', results['code']['commit'])} |" for r in results["scale"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 images, writes nothing")
    parser.add_argument("--skip-224", action="store_true", help="no 224 px run")
    parser.add_argument("--scale-only", action="store_true",
                        help="measure the at-scale rows again (after a change of the search's speed), keep the recorded "
                             "recall and crossover tables")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    n, scale_n = (1000, 2000) if args.quick else (10_000, 30_000)
    recorded = json.loads((RESULTS_DIR / "near_copy_search.json").read_text()) if args.scale_only else {}
    recall = recorded.get("recall") or [recall_at(32, n, list(range(8))), recall_at(64, n, [0, 1])]
    cross = recorded.get("crossover") or crossover([32, 64], [500, 1000] if args.quick else [1000, 2000, 4000])
    scale = [at_scale(64, scale_n, 1.0 if not args.quick else 0.5)]
    if not args.skip_224:
        scale.append(at_scale(224, scale_n, 0.02))
    for row in scale:
        row["code"] = code_revision()["commit"]
    if recorded:
        before = [{**row, "code": row.get("code", recorded["code"]["commit"])} for row in recorded["scale"]]
        scale = before + scale
    results = {"machine": machine_info(), "code": code_revision(), "load_before": load_before,
               "load_after": [round(x, 2) for x in os.getloadavg()], "seconds_total": time.perf_counter() - started,
               "settings": {"exact_max_work": ann.EXACT_MAX_WORK, "reduced_side": ann.REDUCED_SIDE,
                            "spare_candidates": ann.SPARE_CANDIDATES, "lists_per_root": ann.LISTS_PER_ROOT,
                            "probed_share": ann.PROBED_SHARE},
               "recall": recall, "crossover": cross, "scale": scale,
               # --scale-only keeps the recorded tables: name the code that measured them
               "tables_code": recorded.get("tables_code", recorded["code"]["commit"]) if recorded
               else code_revision()["commit"]}
    if args.quick:
        print(table(results))
        return
    save_results("near_copy_search", table(results), results)
    print(table(results))


if __name__ == "__main__":
    main()
