"""The pipeline's answer in a few plain lines: did QA pass, did the synthetic images help, where the
report and the package are, and what to run next.

Everything comes from the files the stages leave behind (reports/qa/metrics.json,
reports/benchmark/metrics.json, params.yaml), so the same block ends a run whether DVC ran the
stages or skipped them: the `report` stage prints it after the page is written, and
`histosynth summary` (which `make repro` calls after `dvc repro`) prints it from the files alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from histosynth import paths
from histosynth.config import PARAMS_FILE, load_params
from histosynth.errors import HistosynthError
from histosynth.fsutil import readable
from histosynth.qa.registry import GATES
from histosynth.report.inputs import read_json
from histosynth.report.schemas import BenchmarkMetrics, GateVerdict, QaClass, QaMetrics, number_or_none
from histosynth.report.sections.benchmark import synthetic_answer

# `make repro` prints the summary itself after `dvc repro`; the report stage then leaves it out.
DEFER_ENV = "HISTOSYNTH_SUMMARY_LATER"
_COMPARISON = {gate.name: ">=" if gate.higher_is_better else "<=" for gate in GATES}
_HEADLINE_GAIN = "augmented_vs_real_only"


def _shown(text: str) -> str:
    """Text from the data (class names) safe on a terminal: undecodable bytes and control characters
    (an escape sequence in a folder name) are shown escaped, never sent to the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in readable(text))


def _number(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _gate_text(name: str, verdict: GateVerdict) -> str:
    """``coverage 0.887 >= 0.8 (margin +11%)``: the figure, the limit it had to meet and the headroom left."""
    extra = verdict.model_extra or {}
    margin = number_or_none(extra.get("margin"))
    text = f"{_shown(name)} {_number(number_or_none(extra.get('value')))} {_COMPARISON.get(name, 'vs')} " \
           f"{_number(verdict.threshold)}"
    return text if margin is None else f"{text} (margin {100 * margin:+.0f}%)"


def _class_line(figures: QaClass) -> str:
    """One class's verdict: its failed gates, or else its closest call (the evaluated gate with the least margin)."""
    def margin(verdict: GateVerdict) -> float:
        value = number_or_none((verdict.model_extra or {}).get("margin"))
        return float("inf") if value is None else value

    by_margin = sorted(figures.gates.items(), key=lambda item: margin(item[1]))
    failed = [_gate_text(name, verdict) for name, verdict in by_margin if verdict.passed is False]
    if failed:
        return f"FAIL  {len(failed)} gate(s) failed: " + "; ".join(failed)
    judged = [(name, verdict) for name, verdict in by_margin if verdict.passed is not None]
    if not judged:
        return "n/a   no gate could be evaluated"
    return f"pass  closest call: {_gate_text(*judged[0])}"


def qa_lines(root: Path) -> list[str]:
    metrics = read_json(root / paths.QA_REPORT_DIR / "metrics.json", QaMetrics)
    if metrics is None:
        return ["QA: not run yet (dvc repro qa)"]
    failed = [name for name, figures in metrics.classes.items() if not figures.passed]
    head = (f"QA passed for all {len(metrics.classes)} classes:" if metrics.passed and not failed else
            f"QA FAILED for {len(failed)} of {len(metrics.classes)} classes:")
    width = max((len(_shown(name)) for name in metrics.classes), default=0)
    return [head] + [f"  {_shown(name).ljust(width)}  {_class_line(figures)}"
                     for name, figures in metrics.classes.items()]


def benchmark_line(root: Path) -> str:
    metrics = read_json(root / paths.BENCHMARK_REPORT_DIR / "metrics.json", BenchmarkMetrics)
    if metrics is None:
        return "Benchmark: not run yet (dvc repro benchmark)"
    answer = synthetic_answer({key: value for key, value in metrics.gains.items() if key == _HEADLINE_GAIN})
    if answer is None:
        return "Benchmark: no real + synthetic vs real only comparison in reports/benchmark/metrics.json"
    seeds = len(metrics.seeds)
    scope = ", ".join(part for part in (f"{seeds} seed{'' if seeds == 1 else 's'}" if seeds else "",
                                        f"{metrics.n_test} real test images" if metrics.n_test else "") if part)
    return f"Benchmark ({scope}): {answer}" if scope else f"Benchmark: {answer}"


def _next_values(root: Path) -> tuple[str, str]:
    """A longer GAN training to try, and the next package version to publish (placeholders when
    params.yaml cannot be read: the summary never fails on it)."""
    try:
        params = load_params(root / PARAMS_FILE)
    except HistosynthError:
        return "<epochs>", "X.Y.Z"
    major, minor, *_ = (params.package.version.split(".") + ["0", "0"])
    version = f"{major}.{int(minor) + 1}.0" if major.isdigit() and minor.isdigit() else "X.Y.Z"
    return str(2 * params.gan.epochs), version


def summary_text(root: Path | str = Path(".")) -> str:
    """The summary block of the project at ``root`` (a missing stage output says which stage makes it)."""
    root = Path(root)
    epochs, version = _next_values(root)
    report, package = root / paths.REPORT_HTML, root / paths.PACKAGE_DIR

    def where(path: Path, rel: Path, stage: str) -> str:
        return str(rel) if path.exists() else f"{rel} (not made yet: dvc repro {stage})"

    commands = [(f"dvc exp run -S gan.epochs={epochs}", "an experiment with one param changed; compare: dvc exp show"),
                (f"histosynth publish --version {version}", "publish the package as a dataset version (needs a DVC remote)"),
                (f"histosynth verify {paths.PACKAGE_DIR}", "re-check every file of the package against its checksums")]
    width = max(len(command) for command, _ in commands)
    return "\n".join([
        "==== histosynth summary ====",
        *qa_lines(root),
        benchmark_line(root),
        f"Report:  {where(report, paths.REPORT_HTML, 'report')}",
        f"Package: {where(package, paths.PACKAGE_DIR, 'package')}",
        "Next:",
        *(f"  {command.ljust(width)}  {what}" for command, what in commands),
    ])


def print_summary(root: Path | str = Path("."), deferrable: bool = False) -> None:
    """Print the summary on stdout; with ``deferrable``, not when the caller said it prints it later
    (``HISTOSYNTH_SUMMARY_LATER=1``, as `make repro` does)."""
    if deferrable and os.environ.get(DEFER_ENV) == "1":
        return
    print(summary_text(root), flush=True)
