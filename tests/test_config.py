from pathlib import Path

import pytest
import yaml

from histosynth.config import load_params, params_from_mapping
from histosynth.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "builtin:ihc"
    assert params.gan.epochs >= 1


def test_missing_sections_take_defaults():
    params = params_from_mapping({"gan": {"epochs": 3}})
    assert params.gan.epochs == 3
    assert params.augment.per_class == 200
    assert params.augment.zoom.min == 1.0 and params.augment.zoom.max == 1.5


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"gan": {"epochs": -1}}, "gan.epochs = -1: Input should be greater than or equal to 1"),
        ({"gan": {"arch": "biggan"}}, "gan.arch = 'biggan'"),
        ({"data": {"image_size": 31}}, "data.image_size = 31"),
        ({"data": {"source": "ftp:x"}}, "unknown source kind 'ftp'"),
        ({"data": {"source": "folder:"}}, "must look like <kind>:<argument>"),
        ({"augment": {"zoom": {"min": 2.0, "max": 1.5}}}, "min (2.0) must not exceed max (1.5)"),
        ({"augment": {"rotate": {"p": 1.5}}}, "augment.rotate.p = 1.5"),
        ({"data": {"val_fraction": 0.5, "test_fraction": 0.45}}, "a training split remains"),
    ],
)
def test_bad_values_name_key_value_and_rule(raw, expected):
    with pytest.raises(ConfigError) as err:
        params_from_mapping(raw, source="params.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("params.yaml: ")


def test_unknown_keys_are_errors_listing_allowed_keys():
    with pytest.raises(ConfigError, match=r"gan: unknown key\(s\) epoch; allowed keys here: .*epochs"):
        params_from_mapping({"gan": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) gna"):
        params_from_mapping({"gna": {}})


def test_unreadable_params_files(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_params(bad)
