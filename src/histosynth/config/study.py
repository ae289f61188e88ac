"""``study.*``: the grid `histosynth study` runs the pipeline over (histosynth.study)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from histosynth.config.base import MAX_SEED, Section
from histosynth.config.benchmark import ARMS, known_arms
from histosynth.config.data import LongTailParams

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a folder name on every file system


class RegimeParams(Section):
    """One regime: how much real data the pipeline gets (data.max_per_class and data.long_tail)."""

    name: str = Field(pattern=NAME_PATTERN)
    real_per_class: int = Field(0, ge=0)  # data.max_per_class: train images per class (0 = all)
    long_tail: LongTailParams = LongTailParams()  # data.long_tail: rare classes cut to a fraction


class StudyParams(Section):
    # Each regime runs the whole pipeline once per generator recipe and seed.
    regimes: list[RegimeParams] = Field(
        [RegimeParams(name=f"{n}_per_class", real_per_class=n) for n in (10, 25, 50, 100)],
        min_length=1, max_length=100)
    # name -> gan.* values over params.yaml's gan section ({}: the section as it is)
    recipes: dict[str, dict[str, Any]] = Field({"gan": {}}, min_length=1, max_length=100)
    # gan.seed = generate.seed of each run; classifier seeds are benchmark.seeds
    generator_seeds: list[int] = Field([0, 1], min_length=1, max_length=100)
    # the benchmark's arms in every run (benchmark.arms)
    arms: list[str] = Field(list(ARMS), min_length=1, max_length=len(ARMS))

    @field_validator("generator_seeds")
    @classmethod
    def _distinct_seeds(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values) or any(v < 0 or v > MAX_SEED for v in values):
            raise ValueError(f"seeds must be distinct and between 0 and {MAX_SEED}")
        return values

    @field_validator("recipes")
    @classmethod
    def _recipe_names(cls, values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        import re

        bad = [name for name in values if not re.match(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"recipe name(s) {', '.join(map(repr, bad))}: lower-case letters, digits, _ and - "
                             "(they name folders)")
        return values

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, values: list[str]) -> list[str]:
        return known_arms(values)

    @model_validator(mode="after")
    def _distinct_regimes(self) -> "StudyParams":
        names = [regime.name for regime in self.regimes]
        if len(set(names)) != len(names):
            raise ValueError(f"regime names must be distinct: {names}")
        return self
