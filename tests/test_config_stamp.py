"""Stamping one params.yaml value leaves every other byte of the file alone."""

import shutil
from pathlib import Path

import pytest
import yaml

from histosynth.config import load_params
from histosynth.config.stamp import set_param
from histosynth.errors import ConfigError

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture
def params(tmp_path) -> Path:
    return Path(shutil.copy(REPO_PARAMS, tmp_path / "params.yaml"))


def test_only_the_value_changes_and_comments_nulls_and_layout_survive(params):
    before = params.read_text()
    set_param("package.version", "1.0.0", params)  # make sure the key exists, then change it
    middle = params.read_text()
    assert set_param("package.version", "2.3.4", params)
    after = params.read_text()
    changed = [(a, b) for a, b in zip(middle.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 1 and "2.3.4" in changed[0][1]
    assert len(middle.splitlines()) == len(after.splitlines())
    assert load_params(params).package.version == "2.3.4"
    assert "# " in after and "null" in after and before.count("#") == after.count("#")


def test_setting_the_same_value_again_reports_no_change(params):
    set_param("package.version", "1.2.0", params)
    text = params.read_text()
    assert set_param("package.version", "1.2.0", params) is False
    assert params.read_text() == text


def test_a_missing_section_or_key_is_added(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  seed: 3  # keep\n")
    assert set_param("package.version", "0.1.0", path)
    assert yaml.safe_load(path.read_text()) == {"data": {"seed": 3}, "package": {"version": "0.1.0"}}
    path.write_text("package:\n  name: x\n")
    assert set_param("package.version", "0.2.0", path)
    assert yaml.safe_load(path.read_text()) == {"package": {"name": "x", "version": "0.2.0"}}


def test_an_invalid_value_is_refused_and_the_file_left_untouched(params):
    text = params.read_text()
    with pytest.raises(ConfigError, match="package.version = 'v1'"):
        set_param("package.version", "v1", params)
    assert params.read_text() == text


def test_a_value_in_a_flow_mapping_is_replaced_in_place(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text('data: {seed: 3}\npackage: {name: x, version: "0.1.0"}  # stamped by publish\n')
    assert set_param("package.version", "0.2.0", path)
    assert path.read_text() == 'data: {seed: 3}\npackage: {name: x, version: "0.2.0"}  # stamped by publish\n'
