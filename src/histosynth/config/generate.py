"""``generate.*``: sampling N images per class from the trained generator."""

from __future__ import annotations

from pydantic import Field

from histosynth.config.base import Section


class GenerateParams(Section):
    n_per_class: int = Field(200, ge=1)
    batch_size: int = Field(256, ge=1)
    seed: int = 0
