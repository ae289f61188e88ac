"""``qa.*``: quality gates for the synthetic images."""

from __future__ import annotations

from pydantic import Field

from histosynth.config.base import Section


class KlParams(Section):
    n_per_class: int = Field(150, ge=2)
    bins: int = Field(32, ge=2, le=256)
    max: float = Field(0.05, ge=0.0)


class QaParams(Section):
    # false: report only; true: the qa stage fails when a gate fails.
    enforce: bool = True
    seed: int = 0
    kl: KlParams = KlParams()
