"""The study's grid: regimes x generator recipes x generator seeds, each a params set and a folder.

A regime's real data (ingest, augment, featurenet) is made once, in ``<study>/<regime>/shared``, and
read by every run of the regime (:func:`histosynth.pipeline.run_pipeline`'s ``upstream``); each
generator recipe and seed has its own project folder ``<study>/<regime>/<recipe>-seed<g>`` for the
stages that depend on the generator (train ... package) and its arms' test probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from histosynth.config import Params
from histosynth.config.loader import describe_problem
from histosynth.config.study import RegimeParams
from histosynth.errors import ConfigError

SHARED = "shared"


@dataclass(frozen=True)
class Run:
    """One pipeline run: a regime, a generator recipe and a generator seed, with its params."""

    regime: RegimeParams
    recipe: str
    seed: int
    params: Params

    @property
    def name(self) -> str:
        return f"{self.recipe}-seed{self.seed}"


def regime_params(base: Params, regime: RegimeParams) -> Params:
    """``base`` with the regime's real data (and QA reported, not enforced: a study runs on when a gate fails)."""
    data = base.data.model_copy(update={"max_per_class": regime.real_per_class, "long_tail": regime.long_tail})
    return base.model_copy(update={
        "data": data, "qa": base.qa.model_copy(update={"enforce": False}),
        "benchmark": base.benchmark.model_copy(update={"arms": list(base.study.arms)})})


def run_params(base: Params, regime: RegimeParams, recipe: str, seed: int) -> Params:
    """The params of one run: the regime's, the recipe's gan.* values (and generate.* values under its
    ``generate`` key: the diffusion model's edits are a generate mode), gan.seed = generate.seed = ``seed``."""
    params = regime_params(base, regime)
    values = dict(base.study.recipes[recipe])
    generate_values = values.pop("generate", {})
    if not isinstance(generate_values, dict):
        raise ConfigError(f"params: study.recipes.{recipe}.generate: a mapping of generate.* values "
                          f"(e.g. {{mode: edit}}), not {generate_values!r}")
    sections = {"gan": (params.gan, {**values, "seed": seed}),
                "generate": (params.generate, {**generate_values, "seed": seed})}
    update = {}
    for name, (section, changes) in sections.items():
        where = ("study", "recipes", recipe) + (("generate",) if name == "generate" else ())
        try:
            update[name] = type(section).model_validate(merged(section.model_dump(), changes))
        except ValidationError as err:
            raise ConfigError("\n".join(describe_problem("params", {**e, "loc": (*where, *e["loc"])})
                                        for e in err.errors())) from None
    return params.model_copy(update=update)


def merged(values: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``changes``, nested mappings merged key by key (``edit: {strength: 0.3}`` keeps
    the other ``edit`` values)."""
    out = dict(values)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def grid(base: Params) -> list[Run]:
    """Every run of ``base.study``, regime by regime (a regime's runs share its real data)."""
    return [Run(regime, recipe, seed, run_params(base, regime, recipe, seed))
            for regime in base.study.regimes for recipe in base.study.recipes for seed in base.study.generator_seeds]


def regime_folder(study_dir: Path, regime: RegimeParams) -> Path:
    return Path(study_dir) / regime.name


def shared_folder(study_dir: Path, regime: RegimeParams) -> Path:
    return regime_folder(study_dir, regime) / SHARED


def run_folder(study_dir: Path, run: Run) -> Path:
    return regime_folder(study_dir, run.regime) / run.name
