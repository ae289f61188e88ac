"""The diffusion training loop: UNet, EMA, optimiser, one epoch of denoising steps.

Every step: flip the real batch at random (when the recipe says so), draw a timestep and noise
per image, replace ``label_dropout`` of the labels by the null class, and regress the UNet's
output on the noise (or the velocity) with a mean squared error. The learning rate warms up
linearly over the first steps (computed from the global step number, so it resumes exactly).
As in the GAN loop, losses are summed on the device and read once per epoch, and a non-finite
loss is remembered with device-side ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from histosynth.generators.diffusion.networks import build_unet, training_scheduler
from histosynth.generators.diffusion.sampling import GuidedSampler
from histosynth.generators.diffusion.settings import DiffusionSettings
from histosynth.generators.training.ema import build_generator_ema
from histosynth.generators.training.runtime import Runtime
from histosynth.generators.training.seeds import derive_seed
from histosynth.progress import EpochProgress

if TYPE_CHECKING:
    from histosynth.generators.training.batches import EpochBatches


@dataclass(frozen=True)
class DiffusionEpoch:
    loss: float  # mean denoising loss over the epoch's steps
    images: int  # training images seen, all processes together
    bad_step: int  # this process's first step with a non-finite loss, -1 when all were finite

    @property
    def finite(self) -> bool:
        return self.bad_step < 0 and math.isfinite(self.loss)


class DiffusionTrainer:
    def __init__(self, settings: DiffusionSettings, runtime: Runtime, n_classes: int, unet_config: dict,
                 noise_config: dict) -> None:
        self.settings, self.runtime, self.n_classes = settings, runtime, n_classes
        torch.manual_seed(derive_seed(settings.seed, "init"))  # weight init is the same on every process
        self.unet = build_unet(unet_config).to(runtime.device)
        self.ema = build_generator_ema(self.unet, settings.ema, warmup=True) if settings.ema > 0 else None
        self.U = runtime.wrap(self.unet)
        self.noise = training_scheduler(noise_config)
        self.optimizer = torch.optim.AdamW(self.U.parameters(), lr=settings.g_lr, betas=settings.betas,
                                           weight_decay=settings.weight_decay)
        sampled = self.ema.module if self.ema is not None else self.unet
        self._sampler = GuidedSampler(sampled, noise_config, settings.sampling, n_classes)

    @property
    def sampling_generator(self) -> nn.Module:
        """``G(z, y)``: the EMA UNet (when enabled) sampled with the recipe's sampler and guidance."""
        return self._sampler

    def state_dict(self) -> dict:
        state = {"unet": self.unet.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.unet.load_state_dict(state["unet"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    def _learning_rate(self, step: int) -> float:
        warmup = self.settings.warmup_steps
        return self.settings.g_lr * min(1.0, (step + 1) / warmup) if warmup else self.settings.g_lr

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        """Each image flipped left-right and top-bottom with probability 1/2 each."""
        flip_w = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
        flip_h = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
        x = torch.where(flip_w, x.flip(3), x)
        return torch.where(flip_h, x.flip(2), x)

    def step(self, x0: torch.Tensor, y: torch.Tensor, global_step: int) -> torch.Tensor:
        """One optimiser step on a batch; returns the loss, detached."""
        s = self.settings
        if s.flips:
            x0 = self._flip(x0)
        noise = torch.randn_like(x0)
        t = torch.randint(0, s.timesteps, (len(x0),), device=x0.device)
        dropped = torch.rand(len(y), device=y.device) < s.label_dropout
        labels = torch.where(dropped, torch.full_like(y, self.n_classes), y)
        noisy = self.noise.add_noise(x0, noise, t)
        target = noise if s.prediction == "epsilon" else self.noise.get_velocity(x0, noise, t)
        with self.runtime.autocast():
            predicted = self.U(noisy, t, class_labels=labels, return_dict=False)[0]
        loss = F.mse_loss(predicted.float(), target)
        for group in self.optimizer.param_groups:
            group["lr"] = self._learning_rate(global_step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if s.grad_clip:
            nn.utils.clip_grad_norm_(self.U.parameters(), s.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.unet)
        return loss.detach()

    def run_epoch(self, batches: EpochBatches, epoch: int, progress: EpochProgress | None = None) -> DiffusionEpoch:
        """Train on ``batches`` (``(images, labels)`` on the device) of epoch ``epoch`` (0-based).

        All randomness of the epoch comes from torch's RNG reseeded from (seed, epoch, rank), so
        resuming at an epoch boundary is exact.
        """
        torch.manual_seed(derive_seed(self.settings.seed, "train", epoch, self.runtime.rank))
        self.U.train()
        device = self.runtime.device
        total = torch.zeros((), device=device)
        bad_step = torch.full((), -1, dtype=torch.long, device=device)
        first_step = epoch * len(batches)
        for i, (images, labels) in enumerate(batches):
            loss = self.step(images, labels, first_step + i)
            total += loss
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), i, bad_step)
            if progress is not None:
                progress.update(len(labels) * self.runtime.world_size)
        total = self.runtime.all_mean(total)
        return DiffusionEpoch(loss=total.item() / max(1, len(batches)),
                              images=batches.n_images * self.runtime.world_size, bad_step=int(bad_step))
