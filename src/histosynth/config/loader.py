"""The one place that reads params.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from histosynth.config.schema import Params
from histosynth.errors import ConfigError

PARAMS_FILE = Path("params.yaml")


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise ConfigError with one line per bad value."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the project root, or pass its path)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}".replace("\n", " ")) from None
    return params_from_mapping(raw if raw is not None else {}, source=str(path))


def params_from_mapping(raw: Any, source: str = "params") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError("\n".join(_describe(source, e) for e in err.errors())) from None


def _describe(source: str, error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{source}: {key}: unknown key"
    value = error.get("input")
    if isinstance(value, dict):  # a section-level problem (e.g. unknown keys): show no dump
        return f"{source}: {key}: {message}"
    return f"{source}: {key} = {value!r}: {message}"
