"""Peak memory of featurenet, curate and qa against the number of real images, this tree and a baseline.

    .venv/bin/python bench/speed/memory_stages.py                      # 300 and 1,200 images per class, 64 px
    .venv/bin/python bench/speed/memory_stages.py --per-class 100 400  # smaller
    .venv/bin/python bench/speed/memory_stages.py --baseline REV       # the code before (default: 331efd1)

A folder source of random textured tiles (3 classes, ``--per-class`` each, ``--size`` px) goes through
ingest, augment, a tiny GAN (2 epochs) and generate (12 candidates per class) once per size with this
tree; then featurenet, curate and qa run on it with this tree and with ``--baseline`` (its ``src/`` and
``stages/`` by ``git archive``), each stage in a process of its own as DVC runs it, and their peak
RSS (``wait4``) and seconds are recorded. The synthetic set stays 12 per class: what grows is the real
train split (and its affine children), which every one of the three reads whole.

Results: bench/results/memory_stages.json and .md.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, stage_runs.py
from machine import code_revision, machine_info, save_results
from stage_runs import REPO, run_stage, write_folder_source, write_params

from histosynth.manifest import read_manifest

UPSTREAM = ("ingest", "augment", "train", "generate")
MEASURED = ("featurenet", "curate", "qa")
PARAMS = {
    "augment": {"per_class": 24},
    "gan": {"epochs": 2, "width": 4, "batch_size": 16, "checkpoint_every": 1, "threads": 1,
            "probe": {"every": 2, "max_images": 40}},
    "generate": {"n_per_class": 12},
    "qa": {"enforce": False, "featurenet": {"epochs": 2, "width": 8, "folds": 2}, "cas": {"enabled": False}},
}


def make_project(root: Path, per_class: int, size: int, params_file: Path) -> Path:
    source = write_folder_source(root / "source", ("alpha", "beta", "gamma"), per_class, size, seed=per_class)
    extra = copy.deepcopy(PARAMS)
    extra["data"] = {"source": f"folder:{source}", "image_size": size, "duplicates": {"action": "warn"}}
    return write_params(root / "project", extra, params_file)


def baseline_code(revision: str, work: Path) -> tuple[Path, str]:
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    root = work / "baseline"
    root.mkdir()
    archive = subprocess.run(["git", "archive", commit, "src", "stages", "params.yaml"], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root, commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[300, 1200])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--baseline", default="331efd1")
    parser.add_argument("--stem", default="memory_stages", help="results file name (bench/results/STEM.md, .json)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="memory-stages-") as tmp:
        work = Path(tmp)
        base, base_commit = baseline_code(args.baseline, work)
        for per_class in args.per_class:
            # the baseline's params.yaml, which both versions accept (later keys have defaults)
            project = make_project(work / f"n{per_class}", per_class, args.size, base / "params.yaml")
            for name in UPSTREAM:
                run_stage(REPO, project, name)
            copies = {"this tree": project, f"baseline {base_commit}": project.with_name("baseline-project")}
            shutil.copytree(project, copies[f"baseline {base_commit}"], symlinks=True)
            train = int((read_manifest(project / "data" / "real")["split"] == "train").sum())
            for name in MEASURED:
                for code_name, code in (("this tree", REPO), (f"baseline {base_commit}", base)):
                    figures = run_stage(code, copies[code_name], name)
                    rows.append({"stage": name, "code": code_name, "per_class": per_class, "real_train": train,
                                 "image_size": args.size, **figures})
                    print(rows[-1], flush=True)
            write(rows, args, base_commit)  # after every size: a run cut short keeps what it measured


def write(rows: list[dict], args: argparse.Namespace, base_commit: str) -> None:
    load = os.getloadavg()
    table = ["| stage | code | images per class | real train | peak RSS MiB | seconds |", "|---|---|---|---|---|---|"]
    table += [f"| {r['stage']} | {r['code']} | {r['per_class']} | {r['real_train']} | {r['peak_rss_mib']} | "
              f"{r['seconds']} |" for r in rows]
    text = (f"# Peak memory of featurenet, curate and qa\n\n{args.size} px, folder source of 3 classes; "
            f"this tree {code_revision()['commit']}, baseline {base_commit}; load average when written "
            f"{load[0]:.1f} (2 cores, shared)\n\n" + "\n".join(table) + "\n")
    save_results(args.stem, text, {"machine": machine_info(), "code": code_revision(), "rows": rows})
    print(text, flush=True)


if __name__ == "__main__":
    main()
