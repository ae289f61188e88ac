"""A trained UNet as a generator ``G(z, y)``: deterministic sampling with classifier-free guidance.

``z`` is each image's initial noise, flattened (``latent_dim = 3 * S * S``): DDIM with eta 0 and
DPM-Solver++ add no noise after the first step, so an image is a function of its initial noise,
its class and the sampling settings alone. That is what lets the GAN machinery of
``histosynth.generate`` (per-image seeded latents, fixed blocks, ``regenerate``) serve diffusion
models unchanged. :meth:`GuidedSampler.edit` does the same from a real image partly noised with
``z`` (SDEdit, Meng et al. 2022): the image-to-image recipe of diffusers' pipelines, which run the
last ``strength`` share of the sampler's steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from histosynth.generators.diffusion.networks import sampling_scheduler


@dataclass(frozen=True)
class Sampling:
    sampler: str  # ddim | dpm
    steps: int
    guidance: float  # 1 = conditional model alone, 0 = unconditional

    def as_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "steps": self.steps, "guidance": self.guidance}

    @property
    def passes_per_step(self) -> int:
        return 1 if self.guidance in (0.0, 1.0) else 2


def edit_steps(steps: int, strength: float) -> int:
    """Sampler steps an edit of ``strength`` runs: round(strength x steps), at least one."""
    return max(1, min(steps, int(strength * steps + 0.5)))


class GuidedSampler(nn.Module):
    """``forward(z [B, 3*S*S], y [B]) -> images [B, 3, S, S]`` in [-1, 1]."""

    # tens of network passes per image: generation gives it a thread per core (BlockSampler.stream)
    compute_bound = True

    def __init__(self, unet: nn.Module, noise: dict[str, Any], sampling: Sampling, n_classes: int) -> None:
        super().__init__()
        self.unet = unet
        self.noise = dict(noise)
        self.sampling = sampling
        self.null_class = n_classes  # the class-embedding row trained on dropped labels
        self.image_size = int(unet.config.sample_size)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = self.sampling
        scheduler = sampling_scheduler(self.noise, s.sampler, s.steps)
        x = z.float().reshape(len(z), 3, self.image_size, self.image_size) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x = scheduler.step(self.predict(x, t, y), t, x).prev_sample
        return x.clamp(-1.0, 1.0)

    def edit(self, z: torch.Tensor, y: torch.Tensor, x0: torch.Tensor, strength: float) -> torch.Tensor:
        """Real images ``x0`` [B, 3, S, S] in [-1, 1] noised with ``z`` to the sampler's timestep nearest
        ``strength`` x T and denoised under labels ``y``: [B, 3, S, S] in [-1, 1]."""
        s = self.sampling
        scheduler = sampling_scheduler(self.noise, s.sampler, s.steps)
        begin = s.steps - edit_steps(s.steps, strength)
        if hasattr(scheduler, "set_begin_index"):  # multistep solvers index their sigmas from here
            scheduler.set_begin_index(begin)
        timesteps = scheduler.timesteps[begin:]
        noise = z.float().reshape(x0.shape)
        x = scheduler.add_noise(x0.float(), noise, timesteps[:1].repeat(len(x0)))
        for t in timesteps:
            x = scheduler.step(self.predict(x, t, y), t, x).prev_sample
        return x.clamp(-1.0, 1.0)

    def predict(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The guided model output (noise or velocity) at timestep ``t``, in fp32."""
        w = self.sampling.guidance
        t = t.to(x.device)
        if w in (0.0, 1.0):
            labels = y if w == 1.0 else torch.full_like(y, self.null_class)
            return self.unet(x, t, class_labels=labels, return_dict=False)[0].float()
        both = self.unet(torch.cat([x, x]), t, class_labels=torch.cat([y, torch.full_like(y, self.null_class)]),
                         return_dict=False)[0].float()
        conditional, unconditional = both.chunk(2)
        return unconditional + w * (conditional - unconditional)
