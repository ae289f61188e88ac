"""params.yaml read as DVC reads it (issue 20): YAML 1.2 through ruamel.yaml, values validated
strictly, and upper bounds on the counts that allocate, for params.yaml and the command line alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc.utils.serialize import parse_yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_run import invoke, one_error
from histosynth.config import load_params
from histosynth.config.loader import parse_params_text
from histosynth.config.stamp import set_param
from histosynth.entry import EXIT_CONFIG
from histosynth.errors import ConfigError

QUICK = settings(max_examples=300, deadline=None, derandomize=True, database=None)


def params_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "value"), [
    ("data:\n  seed: 010\n", 10),  # YAML 1.1 (PyYAML): octal 8
    ("data:\n  seed: 0o10\n", 8),
    ("data:\n  seed: 1_000\n", 1000),
])
def test_numbers_are_read_as_dvc_reads_them(tmp_path: Path, text: str, value: int) -> None:
    assert parse_yaml(text, "params.yaml")["data"]["seed"] == value  # DVC's own reader
    assert load_params(params_file(tmp_path, text)).data.seed == value


@pytest.mark.parametrize(("text", "message"), [
    ("gan:\n  epochs: 1:00\n", "gan.epochs = '1:00': Input should be a valid integer"),  # YAML 1.1: 60
    ("gan:\n  epochs: true\n", "gan.epochs = True: Input should be a valid integer"),  # was 1
    ("gan:\n  epochs: '10'\n", "gan.epochs = '10': Input should be a valid integer"),
    ("data:\n  download: yes\n", "data.download = 'yes': Input should be a valid boolean"),  # YAML 1.1: true
    ("data:\n  download: 1\n", "data.download = 1: Input should be a valid boolean"),
    ("qa:\n  kl:\n    max: false\n", "qa.kl.max = False: Input should be a valid number"),
    ("package:\n  version: >\n    1.0.0\n", "package.version = '1.0.0\\n': has a line break or spaces around it (a "
                                          "folded or literal block, `>` or `|`, keeps the line break)"),
    ("package:\n  version: 1.0.0-rc..1\n", "package.version = '1.0.0-rc..1': must be a semantic version"),
])
def test_values_dvc_reads_as_another_type_are_errors(tmp_path: Path, text: str, message: str) -> None:
    path = params_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(f"{path}: {message}")


def test_a_float_key_takes_a_whole_number(tmp_path: Path) -> None:
    assert load_params(params_file(tmp_path, "qa:\n  kl:\n    max: 1\n")).qa.kl.max == 1.0


@pytest.mark.parametrize(("text", "message"), [
    ("generate:\n  n_per_class: 10000000000000000000000000\n",
     "generate.n_per_class = 10000000000000000000000000: Input should be less than or equal to 100000"),
    ("generate:\n  n_per_class: 50000\n  overgenerate: 100\n",
     "generate: n_per_class x overgenerate = 50000 x 100 = 5,000,000 candidates per class; at most 1,000,000"),
    ("generate:\n  batch_size: 1000000\n", "generate.batch_size = 1000000: Input should be less than or equal to 4096"),
    ("augment:\n  per_class: 1000000000\n",
     "augment.per_class = 1000000000: Input should be less than or equal to 100000"),
    ("gan:\n  width: 100000\n", "gan.width = 100000: Input should be less than or equal to 4096"),
    ("qa:\n  max_per_class: 10000000\n", "qa.max_per_class = 10000000: Input should be less than or equal to 100000"),
    ("data:\n  seed: 18446744073709551616\n", "data.seed = 18446744073709551616: Input should be less than or equal "
                                            "to 4294967295"),
    ("benchmark:\n  seeds: [-1]\n", "benchmark.seeds = [-1]: values must be between 0 and 4294967295"),
])
def test_counts_that_allocate_have_an_upper_bound(tmp_path: Path, text: str, message: str) -> None:
    path = params_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert str(err.value) == f"{path}: {message}"


def test_the_command_line_is_bounded_like_params(tmp_path: Path) -> None:
    path = params_file(tmp_path, "generate:\n  n_per_class: 2\n  device: cpu\n")
    code, output = invoke("generate", "--params", str(path), "--checkpoint", str(tmp_path / "gan"),
                          "--n-per-class", str(10**25), "--out", str(tmp_path / "out"))
    assert code == EXIT_CONFIG
    assert one_error(output) == "error: command line: generate.n_per_class = 10000000000000000000000000: Input " \
                                "should be less than or equal to 100000"
    assert not (tmp_path / "out").exists()


def test_a_folded_version_is_stamped_whole(tmp_path: Path) -> None:
    path = params_file(tmp_path, "package:\n  version: >-\n    1.0.0\n  name: x  # keep\n")
    assert set_param("package.version", "1.1.0", path)
    assert path.read_text() == 'package:\n  version: "1.1.0"\n  name: x  # keep\n'
    assert load_params(path).package.version == "1.1.0"


# Plain scalars on which YAML 1.1 (PyYAML) and YAML 1.2 (ruamel, DVC) disagree, and their neighbours.
SCALARS = st.sampled_from(["010", "0o10", "0x1F", "08", "1:00", "1:30:00", "yes", "no", "on", "off", "y", "n",
                           "True", "TRUE", "true", "Null", "~", "1e3", "1.0e+3", ".5", "+12", "-0", ".inf",
                           "-.INF", ".nan", "1_000", "0b101", "2001-12-14", "1.0.0", "0.1", "=1+1"])


@QUICK
@given(st.lists(SCALARS, min_size=1, max_size=4))
def test_any_scalar_reads_as_dvc_reads_it(scalars: list[str]) -> None:
    text = "".join(f"k{i}: {scalar}\n" for i, scalar in enumerate(scalars))
    ours, dvcs = parse_params_text(text, "params.yaml"), parse_yaml(text, "params.yaml")
    assert ours.keys() == dvcs.keys()
    for key in ours:
        same = ours[key] == dvcs[key] or (ours[key] != ours[key] and dvcs[key] != dvcs[key])  # NaN
        assert same and type(ours[key]) is type(dvcs[key]), (key, ours[key], dvcs[key])
