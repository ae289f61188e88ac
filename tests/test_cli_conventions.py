"""CLI conventions (issue 15): --version, -v after any command, pipeline order in --help, and one
exit status per kind of failure, the same from the CLI and the DVC stage scripts."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from cli_run import invoke
from histosynth.entry import (
    EXIT_CONFIG, EXIT_DIVERGED, EXIT_GATE, EXIT_INPUT, EXIT_OK, EXIT_USAGE, EXIT_VERIFY_FINDINGS, exit_code_of,
)
from histosynth.errors import ConfigError, DataError, GateFailed, HistosynthError, TrainingDiverged
from histosynth.qa.gates import QaGateFailed
from package_inputs import write_package_inputs

REPO = Path(__file__).resolve().parents[1]
PIPELINE_ORDER = ["ingest", "augment", "train", "generate", "featurenet", "curate", "qa", "package", "benchmark", "report",
                  "summary", "study", "verify", "export-sql", "publish"]
TINY_GAN = dict(train_on="real", width=4, latent_dim=16, batch_size=16, epochs=2, checkpoint_every=1,
                probe={"every": 1, "max_images": 8}, device="cpu", g_lr=1e30, d_lr=1e30)


def test_version_prints_the_package_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert invoke("--version") == (EXIT_OK, f"histosynth {version}\n")


def test_help_lists_the_commands_in_pipeline_order() -> None:
    code, output = invoke("--help")
    listed = re.findall(r"^│ ([a-z][a-z-]*)\s{2,}", output, flags=re.M)
    assert code == EXIT_OK and listed == PIPELINE_ORDER


@pytest.mark.parametrize("command", PIPELINE_ORDER)
def test_verbose_is_accepted_after_every_command(command: str) -> None:
    assert invoke(command, "-v", "--help")[0] == EXIT_OK
    assert invoke(command, "--verbose", "--help")[0] == EXIT_OK


def test_verbose_after_the_command_turns_on_debug_logging(tmp_path: Path) -> None:
    invoke("verify", str(tmp_path))
    assert logging.getLogger().level == logging.INFO
    invoke("verify", str(tmp_path), "-v")
    assert logging.getLogger().level == logging.DEBUG
    invoke("-v", "verify", str(tmp_path))
    assert logging.getLogger().level == logging.DEBUG


def test_each_kind_of_error_has_its_own_status() -> None:
    statuses = [exit_code_of(err("x")) for err in (ConfigError, DataError, GateFailed, TrainingDiverged,
                                                    HistosynthError)]
    assert statuses == [EXIT_CONFIG, EXIT_INPUT, EXIT_GATE, EXIT_DIVERGED, EXIT_INPUT]
    assert len({EXIT_OK, EXIT_VERIFY_FINDINGS, EXIT_USAGE, EXIT_CONFIG, EXIT_INPUT, EXIT_GATE, EXIT_DIVERGED}) == 7
    assert issubclass(QaGateFailed, GateFailed)


def test_cli_exit_statuses(tmp_path: Path, tiny_real_dir: Path) -> None:
    assert invoke("verify", "--no-such-option", str(tmp_path))[0] == EXIT_USAGE
    assert invoke("export-sql", str(tmp_path), "--dialect", "oracle")[0] == EXIT_USAGE
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate: {n_per_class: 0}\n")
    assert invoke("generate", "--params", str(bad), "--checkpoint", str(tmp_path))[0] == EXIT_CONFIG
    assert invoke("verify", str(tmp_path / "nowhere"))[0] == EXIT_INPUT

    inputs = write_package_inputs(tmp_path / "inputs", per_split=1, n_synthetic=1, qa_passed=False)
    params = tmp_path / "params.yaml"
    params.write_text("package: {}\nqa: {enforce: true}\ndata: {source: builtin:ihc}\n")
    code, output = invoke("package", "--params", str(params), "--real", str(inputs.real), "--synthetic",
                          str(inputs.synthetic), "--gan", str(inputs.gan), "--qa-metrics", str(inputs.qa_metrics),
                          "--out", str(tmp_path / "package"))
    assert code == EXIT_GATE and "failed QA" in output

    params.write_text(yaml.safe_dump({"gan": TINY_GAN, "curate": {}}))
    code, output = invoke("train", "--params", str(params), "--data", str(tiny_real_dir), "--real",
                          str(tiny_real_dir), "--out", str(tmp_path / "gan"), "--report", str(tmp_path / "report"))
    assert code == EXIT_DIVERGED and "error: training diverged: non-finite loss in epoch 1" in output


@pytest.mark.slow
def test_stage_script_exit_status_for_a_diverged_training(tmp_path: Path, tiny_real_dir: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "real").symlink_to(tiny_real_dir)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"gan": TINY_GAN, "curate": {}}))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "train.py")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == EXIT_DIVERGED and "Traceback" not in proc.stderr
    assert sum(line.startswith("error: training diverged") for line in proc.stderr.splitlines()) == 1
