"""The JSON inputs of the report, as the stages write them (only the fields the report reads are required).

Extra fields are allowed everywhere: a stage may record more than the report shows.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


def number_or_none(value: Any) -> float | None:
    """``value`` as a float when it is a number (not a bool); None otherwise (absent, null, text)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _Input(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class GateVerdict(_Input):
    passed: bool | None  # None: not evaluated (too few images for the figure)
    threshold: float | None


class QaClass(_Input):
    """One class of reports/qa/metrics.json: its figures (extra fields, NaN written as null) and gates."""

    passed: bool
    gates: dict[str, GateVerdict]

    def figure(self, key: str) -> float | None:
        return number_or_none((self.model_extra or {}).get(key))


class QaMetrics(_Input):
    passed: bool
    classes: dict[str, QaClass]
    fid: dict[str, Any] = Field(default_factory=dict)
    featurenet: dict[str, Any] = Field(default_factory=dict)
    cas: dict[str, Any] | None = None  # absent when qa.cas.enabled is false


class TrainMetrics(_Input):
    """reports/train/metrics.json; every field is optional, the report shows those present."""


class Spread(_Input):
    """A figure over several seeds: mean, standard deviation (None for one seed), optional confidence interval."""

    mean: float
    std: float | None
    values: list[float] = Field(default_factory=list)
    ci_low: float | None = None
    ci_high: float | None = None


class ArmMetrics(_Input):
    accuracy: Spread
    balanced_accuracy: Spread | None = None
    auc: Spread
    n_train: int


class Gain(_Input):
    mean: float
    ci_low: float
    ci_high: float


_ARM_FIGURES = {"accuracy", "auc", "n_train"}


class BenchmarkMetrics(_Input):
    """reports/benchmark/metrics.json: one entry per training-data arm beside the keys below."""

    arms: dict[str, ArmMetrics] = Field(min_length=1)
    gains: dict[str, dict[str, Gain]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=list)
    n_test: int | None = None
    classifier: str | None = None
    bootstrap: dict[str, Any] = Field(default_factory=dict)  # how the intervals were made (confidence, ...)

    @model_validator(mode="before")
    @classmethod
    def _gather_arms(cls, data: Any) -> Any:
        """The file keeps arms at the top level: every object there with an arm's figure is one."""
        if not isinstance(data, dict) or "arms" in data:
            return data
        arms = {key: value for key, value in data.items()
                if isinstance(value, dict) and _ARM_FIGURES & value.keys()}
        return {key: value for key, value in data.items() if key not in arms} | {"arms": arms}
