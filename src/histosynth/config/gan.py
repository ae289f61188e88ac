"""``gan.*``: label-conditioned GAN training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from histosynth.config.base import Section

ARCHS = ("dcgan", "sagan", "ascgan", "cwgan128")


class GanParams(Section):
    arch: Literal["dcgan", "sagan", "ascgan", "cwgan128"] = "dcgan"
    # Train on the augmented set (thesis) or on the real train split directly.
    train_on: Literal["augmented", "real"] = "augmented"
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=2)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
