"""``augment.*``: Rudi-style affine augmentation (the thesis' defaults, SEEDS.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from histosynth.config.base import MAX_IMAGES_PER_CLASS, MAX_SEED, Section

Probability = Field(0.5, ge=0.0, le=1.0)


class RotateParams(Section):
    p: float = Probability
    max_degrees: float = Field(10.0, ge=0.0, le=180.0)


class FlipParams(Section):
    p: float = Probability


class ZoomParams(Section):
    p: float = Probability
    min: float = Field(1.0, ge=1.0)
    max: float = Field(1.5, ge=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "ZoomParams":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class SkewParams(Section):
    p: float = Probability
    # Corners move outwards by up to this fraction of the longer side (Augmentor's skew).
    magnitude: float = Field(0.7, ge=0.0, le=1.0)


class DistortionParams(Section):
    p: float = Probability
    # A grid x grid mesh over the image; its inner vertices move by up to ``magnitude`` pixels
    # of a 256 px image (Augmentor's unit), scaled to the tile size: 1 px at 32 px.
    grid: int = Field(8, ge=2, le=64)
    magnitude: float = Field(8.0, ge=0.0)


class AugmentParams(Section):
    # Images per class written, originals included (thesis: 200 per class).
    per_class: int = Field(200, ge=1, le=MAX_IMAGES_PER_CLASS)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    rotate: RotateParams = RotateParams()
    flip: FlipParams = FlipParams()
    zoom: ZoomParams = ZoomParams()
    skew: SkewParams = SkewParams()
    distortion: DistortionParams = DistortionParams()
