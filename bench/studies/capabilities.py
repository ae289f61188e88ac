"""Does the demo pass QA whatever kernels torch picks? The pipeline under each CPU capability.

    .venv/bin/python bench/studies/capabilities.py                   # default, avx2 and (where the CPU has it) avx512
    .venv/bin/python bench/studies/capabilities.py --only default    # one capability
    .venv/bin/python bench/studies/capabilities.py --epochs 150 200 300   # margins after each number of GAN epochs
    .venv/bin/python bench/studies/capabilities.py --seeds 0 1 2 3 4      # the verdict per generator seed

torch chooses its CPU kernels by instruction set (``torch.backends.cpu.get_cpu_capability()``),
and other kernels round differently: the same params train other weights on another CPU. For
each capability this copies the project (dvc.yaml, params.yaml, stages, src) into a temporary
git + DVC repository and runs ``dvc repro qa`` there with ``ATEN_CPU_CAPABILITY`` set, exactly
as a user's ``make repro`` would on such a CPU (ingest -> augment -> train -> generate ->
featurenet -> curate -> qa). It records every gate's value, threshold and margin per class,
the smallest margin, whether QA passed, the capability torch reports, and the MD5 of the
trained generator, so the table shows both that the bytes differ and that the verdicts hold.
With ``--epochs``, each capability's project is brought to each number of GAN epochs in turn
(``gan.epochs`` set in its params.yaml; the train stage resumes the previous checkpoint, which
ends with the same weights as training straight there), and every gate is recorded per epoch
count: how the demo's margins depend on its GAN budget. With ``--seeds``, the same for each
generator seed (``gan.seed``) in turn: another CPU trains other bytes, as another seed does, so the
share of seeds that pass is what a newcomer's CPU can expect (one seed's pass says little).
Results: bench/results/capabilities.json and .md (capabilities_epochs.*, capabilities_seeds.*; ``--name X``
appends ``_X`` to the file name, so that a study of another recipe keeps its own table; ``--keep DIR``
keeps each capability's project, and a later run with changed code reruns only the stages that code
changes: DVC restores the others, trained generators included, from its run cache). Each row
records the epoch whose weights the generator ships (``gan.select``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: machine.py, the helpers every benchmark shares
from machine import RESULTS_DIR, code_revision, machine_info, save_results

ROOT = Path(__file__).resolve().parents[2]
CAPABILITIES = ("default", "avx2", "avx512")


def cpu_has(flag: str) -> bool:
    try:
        return flag in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def copy_code(root: Path) -> None:
    """This checkout's pipeline, params and code into ``root`` (replacing what an earlier run left there)."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("stages", "src"):
        shutil.rmtree(root / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))


def project(root: Path) -> Path:
    if (root / ".dvc").is_dir():  # a kept project (--keep): new code, its DVC cache and run cache kept
        copy_code(root)
        return root
    root.mkdir(parents=True, exist_ok=True)
    copy_code(root)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc_plots_templates")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    shutil.copytree(root / ".dvc_plots_templates", root / ".dvc" / "plots", dirs_exist_ok=True)
    return root


def set_gan_value(root: Path, key: str, value: int) -> None:
    """``gan.<key>: <value>`` in the project's params.yaml, the rest of the file as it was."""
    text = (root / "params.yaml").read_text()
    changed, n = re.subn(rf"(?m)^(  {key}: )\d+", rf"\g<1>{value}", text[text.index("\ngan:"):], count=1)
    assert n == 1, f"no gan.{key} in params.yaml"
    (root / "params.yaml").write_text(text[:text.index("\ngan:")] + changed)


def run(capability: str, epochs: list[int | None], seeds: list[int] | None = None,
        keep: Path | None = None) -> dict[str, dict[str, Any]]:
    results = {}
    with (contextlib.nullcontext(str(keep / capability)) if keep else
          tempfile.TemporaryDirectory(prefix=f"capability-{capability}-")) as tmp:
        root = project(Path(tmp))
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
        reported = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                                  env=env, capture_output=True, text=True, check=True).stdout.strip()
        for seed in seeds or [None]:
            if seed is not None:
                set_gan_value(root, "seed", seed)
            for count in epochs:
                if count is not None:
                    set_gan_value(root, "epochs", count)
                key = capability + ("" if count is None else f"@{count}") + ("" if seed is None else f"#seed{seed}")
                results[key] = repro_qa(root, env, reported)
                print(key, json.dumps({k: v for k, v in results[key].items() if k != "gates"}), flush=True)
    return results


def repro_qa(root: Path, env: dict[str, str], reported: str) -> dict[str, Any]:
    started, cpu_before = time.perf_counter(), os.times()
    done = subprocess.run([sys.executable, "-m", "dvc", "repro", "qa"], cwd=root, env=env, capture_output=True,
                          text=True)
    seconds = round(time.perf_counter() - started, 1)
    cpu_after = os.times()
    cpu = round(cpu_after.children_user + cpu_after.children_system - cpu_before.children_user
                - cpu_before.children_system, 1)
    metrics_file = root / "reports" / "qa" / "metrics.json"
    if not metrics_file.is_file():
        return {"reported_capability": reported, "error": done.stderr[-3000:], "seconds": seconds, "cpu_seconds": cpu}
    metrics = json.loads(metrics_file.read_text())
    generator = hashlib.md5((root / "models" / "gan" / "generator.pt").read_bytes()).hexdigest()
    gates = {name: {gate: {k: v[k] for k in ("value", "threshold", "margin", "passed")}
                    for gate, v in figures["gates"].items()} for name, figures in metrics["classes"].items()}
    train = json.loads((root / "reports" / "train" / "metrics.json").read_text())
    return {"reported_capability": reported, "repro_exit_code": done.returncode, "passed": metrics["passed"],
            "smallest_margin": metrics["smallest_margin"], "generator_md5": generator, "gates": gates,
            "gan_epochs": train.get("epochs_done"), "selected_epoch": train.get("selected_epoch"), "gan_threads": train.get("cpu_threads"), "seconds": seconds,
            "cpu_seconds": cpu}


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    if any("#seed" in key for key in result["runs"]):
        rows = ("Each row `<capability>[@<epochs>]#seed<s>`: `ATEN_CPU_CAPABILITY=<capability> dvc repro qa` with "
                "`gan.seed: <s>` (and `gan.epochs: <epochs>`) and the project's other params, one project per "
                "capability (ingest, augment and the feature net made once).")
    elif any("@" in key for key in result["runs"]):
        rows = ("Each row `<capability>@<epochs>`: `ATEN_CPU_CAPABILITY=<capability> dvc repro qa` with "
                "`gan.epochs: <epochs>` and the project's other params, one project per capability brought from "
                "one epoch count to the next (the train stage resumes).")
    else:
        rows = ("Each row: `ATEN_CPU_CAPABILITY=<capability> dvc repro qa` in a fresh copy of the project (the "
                "demo's default params).")
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}; {machine['date']}; code "
             f"{result['code']['commit']}. {rows}" + (f" {result['note']}" if result.get("note") else ""), "",
             "| capability | torch reports | QA passed | smallest margin (class, gate) | generator.pt MD5 | seconds "
             "| CPU s |", "|---|---|---|---|---|---|---|"]
    for capability, r in result["runs"].items():
        if "error" in r:
            lines.append(f"| {capability} | {r['reported_capability']} | error | | | {r['seconds']} | "
                         f"{r.get('cpu_seconds', '')} |")
            continue
        m = r["smallest_margin"]
        lines.append(f"| {capability} | {r['reported_capability']} | {r['passed']} | {100 * m['margin']:+.0f}% "
                     f"({m['class']}, {m['gate']}) | `{r['generator_md5'][:12]}` | {r['seconds']} | "
                     f"{r.get('cpu_seconds', '')} |")
    lines += ["", "Margins per class and gate (headroom left as a share of the threshold):", ""]
    runs = {c: r for c, r in result["runs"].items() if "gates" in r}
    if runs:
        first = next(iter(runs.values()))["gates"]
        lines += ["| class | gate | " + " | ".join(runs) + " |", "|---|---|" + "---|" * len(runs)]
        for name, gates in first.items():
            for gate in gates:
                cells = []
                for r in runs.values():
                    g = r["gates"][name][gate]
                    cells.append("n/a" if g["margin"] is None else f"{100 * g['margin']:+.0f}% ({g['value']:.3g})")
                lines.append(f"| {name} | {gate} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=CAPABILITIES)
    parser.add_argument("--epochs", nargs="*", type=int, help="GAN epochs to reach in turn (default: params.yaml's)")
    parser.add_argument("--seeds", nargs="*", type=int, help="generator seeds (gan.seed) in turn (default: params.yaml's)")
    parser.add_argument("--keep", type=Path, help="keep each capability's project in KEEP/<capability>; a later run "
                        "with other code reuses the stages it does not change (DVC's run cache)")
    parser.add_argument("--name", default="", help="suffix of the results' file name (capabilities_seeds_<name>.*)")
    args = parser.parse_args()
    wanted = [c for c in (args.only or CAPABILITIES) if c != "avx512" or cpu_has("avx512f")]
    runs = {}
    for capability in wanted:
        runs |= run(capability, sorted(args.epochs) if args.epochs else [None], args.seeds, args.keep)
    result = {"machine": machine_info(), "code": code_revision(), "load_average_end": os.getloadavg(), "runs": runs}
    stem = "capabilities_seeds" if args.seeds else "capabilities_epochs" if args.epochs else "capabilities"
    stem += f"_{args.name}" if args.name else ""
    path = RESULTS_DIR / f"{stem}.json"
    if args.only and path.is_file():
        result["runs"] = {**json.loads(path.read_text()).get("runs", {}), **runs}
    save_results(stem, markdown(result), result)
    print(markdown(result))


if __name__ == "__main__":
    main()
