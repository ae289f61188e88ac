"""params.yaml is read as strictly as DVC reads it, by the CLI and the stage scripts alike.

Issue 14 rows 7 (a file that is not UTF-8) and 11 (a missing section, a duplicate key, an empty
file: DVC refuses them, the CLI used the code's defaults), and hostile YAML.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from histosynth.cli import app
from histosynth.config import load_params
from histosynth.config.loader import MAX_VALUES, STAGE_SECTIONS
from histosynth.entry import EXIT_CONFIG
from histosynth.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PARAMS = (REPO / "params.yaml").read_text(encoding="utf-8")


def train_cli(params: Path, tmp_path: Path) -> tuple[int, list[str]]:
    """`histosynth train` on data that does not exist: only a params error can come first."""
    result = CliRunner().invoke(app, ["train", "--params", str(params), "--data", str(tmp_path / "nowhere"),
                                      "--real", str(tmp_path / "nowhere"), "--out", str(tmp_path / "gan"),
                                      "--report", str(tmp_path / "report")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, [line for line in result.output.splitlines() if line.startswith("error:")]


def without_section(text: str, section: str) -> str:
    params = yaml.safe_load(text)
    del params[section]
    return yaml.safe_dump(params, sort_keys=False)


@pytest.mark.parametrize(("content", "message"), [
    (without_section(PARAMS, "gan"), "no 'gan:' section; `train` reads it, and DVC refuses such a file too"),
    (PARAMS.replace("gan:\n", "gan:\n  epochs: 3\ngan:\n", 1), "the key 'gan' is given twice in one mapping"),
    (PARAMS.replace("gan:\n", "gan:\n  epochs: 30\n", 1), "the key 'epochs' is given twice"),  # beside gan.epochs
    ("", "empty; a params file needs the sections"),
    ("# only a comment\n", "empty; a params file needs the sections"),
])
def test_the_cli_refuses_what_dvc_refuses(tmp_path: Path, content: str, message: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(content, encoding="utf-8")
    code, errors = train_cli(params, tmp_path)
    assert code == EXIT_CONFIG
    assert len(errors) == 1 and message in errors[0], errors


def test_a_params_file_that_is_not_utf8_is_one_error_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes(PARAMS.replace("histosynth-demo", "histosynth-d\xe9mo").encode("latin-1"))
    code, errors = train_cli(params, tmp_path)
    line = next(n for n, text in enumerate(PARAMS.splitlines(), 1) if "histosynth-demo" in text)
    assert code == EXIT_CONFIG
    assert errors == [f"error: {params} line {line}: not UTF-8 text (byte 0xe9); save the file as UTF-8"]


def test_a_stage_script_refuses_a_missing_section_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(without_section(PARAMS, "data"), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "ingest.py")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == EXIT_CONFIG and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        "error: params.yaml: no 'data:' section; `ingest` reads it, and DVC refuses such a file too (the code's "
        "defaults are not params.yaml's): add it, e.g. copied from the project's params.yaml"]
    assert not (tmp_path / "data").exists()


def test_every_stage_requires_the_sections_dvc_yaml_gives_it() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        declared = {key.split(".")[0] for key in stage.get("params", [])}
        assert declared <= set(STAGE_SECTIONS.get(name, ())), (name, declared)


@pytest.mark.parametrize(("content", "message"), [
    ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6)),
     f"more than {MAX_VALUES:,} values once YAML aliases are expanded"),
    ("a: &a [*a]\n", "a value contains itself"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("data: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("gan:\n  epochs: '" + "9" * 5000 + "'\n", "gan.epochs = '99999999999999999999999999999999999999999999999999999999..."),
])
def test_hostile_yaml_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_params(params)
    assert message in str(err.value)
    assert len(str(err.value)) < 2000
