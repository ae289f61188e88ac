"""The diffusion arch's recipe: network shape per image size, training and sampling defaults.

Sources: Ho et al. 2020 (DDPM: UNet, epsilon objective, Adam 2e-4, grad clip 1, EMA, dropout
0.1, random flips, 1000 steps, attention at 16 px, 2 residual blocks per level, base width 128
with multipliers 1,2,2,2 at 32 px); Nichol & Dhariwal 2021 (cosine schedule; multipliers
1,2,3,4 at 64 px); Dhariwal & Nichol 2021 (1,1,2,3,4 at 128 px); Ho & Salimans 2022
(classifier-free guidance, label dropout 0.1-0.2); Song et al. 2021 (DDIM); Lu et al. 2022
(DPM-Solver++). ``width``/``layers_per_block``/``attention_max_size`` are CPU-friendly
defaults; ``paper_*`` are the papers' values, for a GPU run to set (``gan.width``,
``gan.diffusion.layers_per_block``).
"""

from __future__ import annotations

from dataclasses import dataclass

from histosynth.errors import ConfigError

# Channel multipliers per UNet level (one level per halving of the image, from full size down).
CHANNEL_MULTIPLIERS: dict[int, tuple[int, ...]] = {
    28: (1, 2, 2),  # 28, 14, 7 px
    32: (1, 2, 2, 2),  # 32, 16, 8, 4 px (DDPM CIFAR-10)
    64: (1, 2, 3, 4),  # 64, 32, 16, 8 px (improved DDPM)
    128: (1, 1, 2, 3, 4),  # 128 ... 8 px (ADM)
}


@dataclass(frozen=True)
class DiffusionRecipe:
    name: str
    image_sizes: tuple[int, ...]
    width: int  # base channels (level 1); every level is a multiple of it
    paper_width: int
    layers_per_block: int
    paper_layers_per_block: int
    attention_max_size: int  # self-attention on the levels at most this many pixels wide
    paper_attention_max_size: int
    dropout: float
    timesteps: int
    schedule: str  # cosine | linear
    prediction: str  # epsilon | v_prediction
    label_dropout: float
    lr: float
    betas: tuple[float, float]
    batch_size: int
    grad_clip: float
    warmup_steps: int  # linear learning-rate warm-up over this many optimiser steps
    flips: bool  # random horizontal and vertical flips of the training images (label-preserving in histology)
    # sampling defaults, recorded with the model; generate.diffusion.* override them
    sampler: str  # ddim | dpm
    steps: int
    guidance: float


_RECIPES: dict[str, DiffusionRecipe] = {
    "ddpm": DiffusionRecipe(
        name="ddpm", image_sizes=tuple(CHANNEL_MULTIPLIERS), width=32, paper_width=128,
        layers_per_block=1, paper_layers_per_block=2, attention_max_size=8, paper_attention_max_size=16,
        dropout=0.1, timesteps=1000, schedule="cosine", prediction="epsilon", label_dropout=0.1,
        lr=2e-4, betas=(0.9, 0.999), batch_size=64, grad_clip=1.0, warmup_steps=200, flips=True,
        # guidance 2 had the lower mean per-class FID / floor against BloodMNIST's real val split
        # (bench/results/diffusion_guidance.md: 396 vs 404 at 1, label agreement 0.175 vs 0.156),
        # measured on a CPU-budget model far from converged: re-measure with a trained one
        sampler="ddim", steps=25, guidance=2.0,
    ),
}


def known_archs() -> tuple[str, ...]:
    return tuple(_RECIPES)


def get_recipe(arch: str) -> DiffusionRecipe:
    try:
        return _RECIPES[arch]
    except KeyError:
        raise ConfigError(f"gan.arch={arch!r} is not a diffusion arch; choose one of {', '.join(_RECIPES)}") from None
