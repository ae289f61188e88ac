"""The UNet and the noise schedules, built from plain configs (stored in ``record.json``).

diffusers is imported here only, lazily, with the Hugging Face Hub switched to offline mode:
everything is built from configs written in this module, nothing is ever fetched.
"""

from __future__ import annotations

import math
import os
from typing import Any

from torch import nn

from histosynth.generators.diffusion.recipe import CHANNEL_MULTIPLIERS

# GroupNorm groups: 32 as in DDPM, fewer when the width is not a multiple of 32.
NORM_GROUPS = 32


def _diffusers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub, whatever a code path tries
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import diffusers

    return diffusers


def diffusers_version() -> str:
    return _diffusers().__version__


def unet_config(image_size: int, n_classes: int, width: int, layers_per_block: int, attention_max_size: int,
                dropout: float) -> dict[str, Any]:
    """``UNet2DModel`` keyword arguments: class embedding with ``n_classes + 1`` entries (the last
    one is the null class of classifier-free guidance)."""
    multipliers = CHANNEL_MULTIPLIERS[image_size]
    sizes = [image_size // 2**level for level in range(len(multipliers))]
    attention = [size <= attention_max_size for size in sizes]
    return {
        "sample_size": image_size,
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [width * m for m in multipliers],
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "layers_per_block": layers_per_block,
        "norm_num_groups": math.gcd(NORM_GROUPS, width),
        "attention_head_dim": None,  # one head over all channels, as in DDPM
        "dropout": dropout,
        "num_class_embeds": n_classes + 1,
    }


def build_unet(config: dict[str, Any]) -> nn.Module:
    """``UNet2DModel(**config)``, initialised from torch's RNG."""
    return _diffusers().UNet2DModel(**config)


def noise_config(timesteps: int, schedule: str, prediction: str) -> dict[str, Any]:
    """The training noise process (a DDPM scheduler config), shared by every sampler."""
    return {
        "num_train_timesteps": timesteps,
        "beta_schedule": "squaredcos_cap_v2" if schedule == "cosine" else "linear",
        "prediction_type": prediction,
    }


def training_scheduler(config: dict[str, Any]):
    return _diffusers().DDPMScheduler(**config)


def sampling_scheduler(config: dict[str, Any], sampler: str, steps: int):
    """A fresh deterministic sampler set to ``steps`` steps (multistep solvers keep state: one per run).

    "trailing" timestep spacing starts at the last training timestep, which few-step samplers need
    (Lin et al. 2024); DDIM clips its x0 prediction to the image range.
    """
    d = _diffusers()
    if sampler == "ddim":
        scheduler = d.DDIMScheduler(**config, clip_sample=True, timestep_spacing="trailing")
    elif sampler == "dpm":
        scheduler = d.DPMSolverMultistepScheduler(**config, algorithm_type="dpmsolver++", solver_order=2,
                                                  timestep_spacing="trailing")
    else:
        raise ValueError(f"unknown sampler {sampler!r}")
    scheduler.set_timesteps(steps)
    return scheduler
