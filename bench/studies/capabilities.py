"""Does the demo pass QA whatever kernels torch picks? The pipeline under each CPU capability.

    .venv/bin/python bench/studies/capabilities.py                   # default, avx2 and (where the CPU has it) avx512
    .venv/bin/python bench/studies/capabilities.py --only default    # one capability

torch chooses its CPU kernels by instruction set (``torch.backends.cpu.get_cpu_capability()``),
and other kernels round differently: the same params train other weights on another CPU. For
each capability this copies the project (dvc.yaml, params.yaml, stages, src) into a temporary
git + DVC repository and runs ``dvc repro qa`` there with ``ATEN_CPU_CAPABILITY`` set, exactly
as a user's ``make repro`` would on such a CPU (ingest -> augment -> train -> generate ->
featurenet -> curate -> qa). It records every gate's value, threshold and margin per class,
the smallest margin, whether QA passed, the capability torch reports, and the MD5 of the
trained generator, so the table shows both that the bytes differ and that the verdicts hold.
Results: bench/results/capabilities.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


def project(root: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc_plots_templates")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    shutil.copytree(root / ".dvc_plots_templates", root / ".dvc" / "plots", dirs_exist_ok=True)
    return root


def run(capability: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"capability-{capability}-") as tmp:
        root = project(Path(tmp))
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
        reported = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                                  env=env, capture_output=True, text=True, check=True).stdout.strip()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "dvc", "repro", "qa"], cwd=root, env=env, capture_output=True,
                              text=True)
        seconds = round(time.perf_counter() - started, 1)
        metrics_file = root / "reports" / "qa" / "metrics.json"
        if not metrics_file.is_file():
            return {"reported_capability": reported, "error": done.stderr[-3000:], "seconds": seconds}
        metrics = json.loads(metrics_file.read_text())
        generator = hashlib.md5((root / "models" / "gan" / "generator.pt").read_bytes()).hexdigest()
        gates = {name: {gate: {k: v[k] for k in ("value", "threshold", "margin", "passed")}
                        for gate, v in figures["gates"].items()} for name, figures in metrics["classes"].items()}
        return {"reported_capability": reported, "repro_exit_code": done.returncode, "passed": metrics["passed"],
                "smallest_margin": metrics["smallest_margin"], "generator_md5": generator, "gates": gates,
                "seconds": seconds}


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}; {machine['date']}; code "
             f"{result['code']['commit']}. Each row: `ATEN_CPU_CAPABILITY=<capability> dvc repro qa` in a fresh copy "
             "of the project (the demo's default params).", "",
             "| capability | torch reports | QA passed | smallest margin (class, gate) | generator.pt MD5 | seconds |",
             "|---|---|---|---|---|---|"]
    for capability, r in result["runs"].items():
        if "error" in r:
            lines.append(f"| {capability} | {r['reported_capability']} | error | | | {r['seconds']} |")
            continue
        m = r["smallest_margin"]
        lines.append(f"| {capability} | {r['reported_capability']} | {r['passed']} | {100 * m['margin']:+.0f}% "
                     f"({m['class']}, {m['gate']}) | `{r['generator_md5'][:12]}` | {r['seconds']} |")
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
    args = parser.parse_args()
    wanted = [c for c in (args.only or CAPABILITIES) if c != "avx512" or cpu_has("avx512f")]
    runs = {}
    for capability in wanted:
        runs[capability] = run(capability)
        print(capability, json.dumps({k: v for k, v in runs[capability].items() if k != "gates"}), flush=True)
    result = {"machine": machine_info(), "code": code_revision(), "load_average_end": os.getloadavg(), "runs": runs}
    path = RESULTS_DIR / "capabilities.json"
    if args.only and path.is_file():
        result["runs"] = {**json.loads(path.read_text()).get("runs", {}), **runs}
    save_results("capabilities", markdown(result), result)
    print(markdown(result))


if __name__ == "__main__":
    main()
