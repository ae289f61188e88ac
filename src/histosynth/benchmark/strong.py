"""The strong conventional baseline's on-the-fly augmentation: what practitioners use instead of a generator.

Every image of every batch gets torchvision's TrivialAugmentWide (one random operation of random
strength: colour, contrast, sharpness, posterize, solarize, equalize, shear, translate, rotate...)
and then stain jitter in HED space (:mod:`histosynth.augment.stain`, Tellez et al. 2019). The
random draws come from the training's seeded generator: the same seed gives the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from histosynth.augment.stain import hed_jitter

# TrivialAugmentWide draws from torch's global generator: each batch forks it, seeded from ours.
_SEED_RANGE = 2**62


@dataclass(frozen=True)
class StrongAugment:
    """(N, 3, H, W) uint8 batch -> the same batch augmented; a picklable value (spawned workers get it)."""

    hed_scale: float
    hed_shift: float

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, _SEED_RANGE, (1,), generator=generator))
        trivial = v2.TrivialAugmentWide()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            augmented = torch.stack([trivial(image) for image in images])
        return hed_jitter(augmented, self.hed_scale, self.hed_shift, generator)
