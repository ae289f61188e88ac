"""The summary that ends `dvc repro` and `make repro`: QA per class with its closest call, the benchmark's
answer with its interval, where the report and the package are, and the next commands; read from the
metrics files alone (made here by report_inputs, no stage is run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from histosynth.entry import EXIT_INPUT
from histosynth.summary import DEFER_ENV, print_summary, summary_text
from report_inputs import write_report_inputs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_report_inputs(tmp_path_factory.mktemp("summary") / "project")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gan"]["epochs"], params["package"]["version"] = 150, "2.3.4"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.fixture
def copy(project: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(project, tmp_path / "project"))


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_qa_is_summarised_per_class_with_the_failures_or_the_closest_call(project: Path) -> None:
    metrics = json.loads((project / "reports/qa/metrics.json").read_text())
    text = summary_text(project)
    failing = [name for name, figures in metrics["classes"].items() if not figures["passed"]]
    assert f"QA FAILED for {len(failing)} of {len(metrics['classes'])} classes:" in text
    for name, figures in metrics["classes"].items():
        line = next(line for line in lines_of(text) if line.strip().startswith(name))
        verdict = line.strip()[len(name):].split()
        if figures["passed"]:
            gates = {gate: v for gate, v in figures["gates"].items() if v["margin"] is not None}
            closest = min(gates, key=lambda gate: gates[gate]["margin"])
            assert verdict[0] == "pass" and "closest call: " + closest in line
            assert f"(margin {100 * gates[closest]['margin']:+.0f}%)" in line
        else:
            failed = [gate for gate, v in figures["gates"].items() if v["passed"] is False]
            assert verdict[0] == "FAIL" and f"{len(failed)} gate(s) failed" in line
            assert all(gate in line for gate in failed)
            assert "label_consistency 0.2 >= " in line  # the value against the limit it missed


def test_all_classes_passing_say_so(copy: Path) -> None:
    path = copy / "reports/qa/metrics.json"
    metrics = json.loads(path.read_text())
    for figures in metrics["classes"].values():
        figures["passed"] = True
        for gate in figures["gates"].values():
            gate["passed"] = True if gate["passed"] is not None else None
            gate["margin"] = abs(gate["margin"]) if gate["margin"] is not None else None
    metrics["passed"] = True
    path.write_text(json.dumps(metrics))
    text = summary_text(copy)
    assert f"QA passed for all {len(metrics['classes'])} classes:" in text
    assert "FAIL" not in text


def test_the_benchmark_answer_is_one_sentence_with_its_interval(project: Path) -> None:
    gain = json.loads((project / "reports/benchmark/metrics.json").read_text())["gains"]["augmented_vs_real_only"]
    line = next(line for line in lines_of(summary_text(project)) if line.startswith("Benchmark"))
    assert line.startswith("Benchmark (3 seeds, 12 real test images): Did the synthetic images help? ")
    assert f"[{gain['accuracy']['ci_low']:+.3f}, {gain['accuracy']['ci_high']:+.3f}]" in line
    assert "affine" not in line  # only real + synthetic against real only


def test_paths_and_next_commands_come_last(project: Path) -> None:
    text = summary_text(project)
    tail = lines_of(text)[-6:]
    assert tail[0] == "Report:  reports/index.html (not made yet: dvc repro report)"
    assert tail[1] == "Package: data/package (not made yet: dvc repro package)"
    assert tail[2] == "Next:"
    assert tail[3].split()[:4] == ["dvc", "exp", "run", "-S"] and "gan.epochs=300" in tail[3]  # twice params' 150
    assert "histosynth publish --version 2.4.0" in tail[4]  # the next minor version after params' 2.3.4
    assert "histosynth verify data/package" in tail[5]


def test_existing_report_and_package_are_named_plainly(copy: Path) -> None:
    (copy / "reports/index.html").write_text("<html></html>")
    (copy / "data/package").mkdir(parents=True)
    text = summary_text(copy)
    assert "Report:  reports/index.html\n" in text and "Package: data/package\n" in text


def test_missing_metrics_say_which_stage_makes_them(tmp_path: Path) -> None:
    text = summary_text(tmp_path)
    assert "QA: not run yet (dvc repro qa)" in text
    assert "Benchmark: not run yet (dvc repro benchmark)" in text
    assert "dvc exp run -S gan.epochs=<epochs>" in text  # no params.yaml: a placeholder, not a failure


def test_class_names_cannot_send_control_characters_to_the_terminal(copy: Path) -> None:
    path = copy / "reports/qa/metrics.json"
    metrics = json.loads(path.read_text())
    first = next(iter(metrics["classes"]))
    metrics["classes"] = {"evil\x1b[2Jname": metrics["classes"][first]}
    path.write_text(json.dumps(metrics))
    text = summary_text(copy)
    assert "\x1b" not in text and "evil\\x1b[2Jname" in text


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "histosynth.cli", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_the_cli_prints_the_summary_even_when_asked_to_defer(project: Path) -> None:
    done = cli(project, "summary", "--root", str(project), env={DEFER_ENV: "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == summary_text(project)


def test_a_malformed_metrics_file_is_one_error_line(copy: Path) -> None:
    (copy / "reports/benchmark/metrics.json").write_text("{not json")
    done = cli(copy, "summary", "--root", str(copy))
    assert done.returncode == EXIT_INPUT
    assert done.stderr.startswith("error: ") and "reports/benchmark/metrics.json" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("later", ["1", "0", None])
def test_the_report_stage_prints_it_unless_make_prints_it_later(project: Path, later: str | None,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # stages/report.py calls print_summary(deferrable=True) after writing the page (run by the end-to-end test)
    if later is None:
        monkeypatch.delenv(DEFER_ENV, raising=False)
    else:
        monkeypatch.setenv(DEFER_ENV, later)
    print_summary(project, deferrable=True)
    printed = capsys.readouterr().out
    assert printed == ("" if later == "1" else summary_text(project) + "\n")
