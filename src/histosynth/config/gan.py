"""``gan.*``: label-conditioned GAN training.

Keys set to ``null`` take the value of the architecture's recipe (the source documents'
training recipe, ``histosynth.gan.models.get_recipe``); set a value to override it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from histosynth.config.base import Section

ARCHS = ("dcgan", "sagan", "ascgan", "cwgan128")
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")


class ProbeParams(Section):
    """The held-out real-vs-fake probe: accuracy near 50% means fakes are hard to tell apart."""

    # Run it every this many epochs (and after the last one); 0 = off.
    every: int = Field(1, ge=0)
    # At most this many real validation images (half to fit, half to score); fakes match in number.
    max_images: int = Field(400, ge=4)


class GanParams(Section):
    arch: Literal["dcgan", "sagan", "ascgan", "cwgan128"] = "dcgan"
    # Train on the augmented set (thesis) or on the real train split directly.
    train_on: Literal["augmented", "real"] = "augmented"
    epochs: int = Field(30, ge=1)
    # Recipe values (null = the arch's recipe). batch_size is global: split across DDP processes.
    batch_size: int | None = Field(None, ge=2)
    latent_dim: int | None = Field(None, ge=1)
    width: int | None = Field(None, ge=1)
    g_lr: float | None = Field(None, gt=0.0)
    d_lr: float | None = Field(None, gt=0.0)
    n_critic: int | None = Field(None, ge=1, le=100)
    # DiffAugment policies applied to every discriminator input; [] = off.
    diffaugment: list[str] | None = None
    # WGAN-GP gradient-penalty weight (used by wgan-gp archs only).
    gp_weight: float = Field(10.0, ge=0.0)
    # Generator EMA decay, reached after a warm-up (update n uses min(ema, (1+n)/(10+n)));
    # 0 = off (sample from the raw generator).
    ema: float = Field(0.999, ge=0.0, lt=1.0)
    # Sample from the EMA generator with BatchNorm statistics recomputed from its own weights
    # (BigGAN's standing statistics) instead of averaged ones; changes sampling, not training.
    standing_stats: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads per process; 0 = OMP_NUM_THREADS if set, else the cores shared among processes.
    # Results are byte-identical only for the same thread count (float sums are split differently).
    threads: int = Field(0, ge=0)
    # auto: bf16 autocast on CUDA when the GPU supports it, fp32 otherwise.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Write a resumable checkpoint every this many epochs (and after the last one).
    checkpoint_every: int = Field(5, ge=1)
    # VGG-19 weights file for ascgan's perceptual loss; "" = off. Never downloaded.
    perceptual_weights: str = ""
    probe: ProbeParams = ProbeParams()
    seed: int = Field(0, ge=0)

    @field_validator("diffaugment")
    @classmethod
    def _known_policies(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        unknown = [p for p in value if p not in DIFFAUGMENT_POLICIES]
        if unknown:
            raise ValueError(f"unknown DiffAugment polic(ies) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(DIFFAUGMENT_POLICIES)} ([] = off, null = the arch's default)")
        if len(set(value)) != len(value):
            raise ValueError("lists a DiffAugment policy twice")
        return value

    @model_validator(mode="after")
    def _perceptual_needs_ascgan(self) -> "GanParams":
        if self.perceptual_weights and self.arch != "ascgan":
            raise ValueError(f"perceptual_weights is only used by arch ascgan (arch is {self.arch!r}); "
                             "set it to \"\" or switch arch")
        return self
