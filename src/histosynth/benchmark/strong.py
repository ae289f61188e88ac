"""The strong conventional baseline's on-the-fly augmentation: what practitioners use instead of a generator.

Every image of every batch gets one of torchvision's automatic augmentation policies
(``benchmark.strong.policy``: TrivialAugmentWide, one random operation of random strength; or
RandAugment, two operations of strength 9 of 31: colour, contrast, sharpness, posterize, solarize,
equalize, shear, translate, rotate...; or none) and then stain jitter in HED space
(:mod:`histosynth.augment.stain`, Tellez et al. 2019). The random draws come from the training's
seeded generator: the same seed gives the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from histosynth.augment.stain import hed_jitter

POLICIES = {"trivial_augment_wide": v2.TrivialAugmentWide, "rand_augment": v2.RandAugment}
# The policies draw from torch's global generator: each batch forks it, seeded from ours.
_SEED_RANGE = 2**62


@dataclass(frozen=True)
class StrongAugment:
    """(N, 3, H, W) uint8 batch -> the same batch augmented; a picklable value (spawned workers get it)."""

    hed_scale: float
    hed_shift: float
    policy: str = "trivial_augment_wide"

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, _SEED_RANGE, (1,), generator=generator))
        if self.policy != "none":
            policy = POLICIES[self.policy]()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                images = torch.stack([policy(image) for image in images])
        return hed_jitter(images, self.hed_scale, self.hed_shift, generator)
