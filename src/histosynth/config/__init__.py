"""Typed, validated params: ``load_params()`` is the only reader of params.yaml."""

from histosynth.config.loader import PARAMS_FILE, load_params, params_from_mapping
from histosynth.config.schema import Params

__all__ = ["PARAMS_FILE", "Params", "load_params", "params_from_mapping"]
