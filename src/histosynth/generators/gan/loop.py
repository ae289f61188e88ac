"""The adversarial training loop: networks, optimisers, one epoch of D and G steps.

Losses are summed on the device and read once per epoch, so a CUDA run never waits for the
host between steps. A non-finite loss is remembered (first epoch step it happened at) with
device-side ops and reported when the epoch ends.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from histosynth.generators.gan.diffaugment import diff_augment
from histosynth.generators.gan.losses import discriminator_loss, generator_loss, gradient_penalty
from histosynth.generators.gan.models import build_discriminator, build_generator
from histosynth.generators.gan.perceptual import PerceptualLoss
from histosynth.generators.gan.settings import TrainSettings
from histosynth.generators.training.ema import build_generator_ema, with_standing_statistics
from histosynth.generators.training.runtime import Runtime
from histosynth.generators.training.seeds import derive_seed
from histosynth.progress import EpochProgress

if TYPE_CHECKING:
    from histosynth.generators.training.batches import EpochBatches


@dataclass(frozen=True)
class EpochResult:
    d_loss: float  # mean over the epoch's D steps (gradient penalty included)
    g_loss: float | None  # mean over the epoch's G steps (None when the epoch had none)
    gradient_penalty: float  # mean unweighted penalty (wgan-gp), else 0
    images: int  # real images the discriminator saw, all processes together
    bad_step: int  # this process's first step with a non-finite loss, -1 when all were finite

    @property
    def finite(self) -> bool:
        # The loss sums are averaged over processes, so a NaN on any process shows here on all.
        losses = (self.d_loss, self.gradient_penalty) + ((self.g_loss,) if self.g_loss is not None else ())
        return self.bad_step < 0 and all(map(math.isfinite, losses))


class GanTrainer:
    def __init__(self, settings: TrainSettings, runtime: Runtime, n_classes: int, image_size: int) -> None:
        self.settings, self.runtime = settings, runtime
        torch.manual_seed(derive_seed(settings.seed, "init"))  # weight init is the same on every process
        generator = build_generator(settings.arch, n_classes, image_size, settings.latent_dim, settings.width)
        discriminator = build_discriminator(settings.arch, n_classes, image_size, settings.width,
                                            feature_size=settings.feature_size,
                                            pixel_discriminator=settings.pixel_discriminator)
        self.generator, self.discriminator = generator.to(runtime.device), discriminator.to(runtime.device)
        self.ema = build_generator_ema(self.generator, settings.ema, warmup=True) if settings.ema > 0 else None
        self.n_classes = n_classes
        self._standing: tuple[int, nn.Module] | None = None  # (EMA updates it was computed at, the copy)
        self.G, self.D = runtime.wrap(self.generator), runtime.wrap(self.discriminator)
        self.perceptual = (PerceptualLoss(settings.perceptual_weights).to(runtime.device)
                           if settings.perceptual_weights else None)
        adam = dict(betas=settings.betas, weight_decay=settings.weight_decay)
        self.g_opt = torch.optim.Adam(self.G.parameters(), lr=settings.g_lr, **adam)
        self.d_opt = torch.optim.Adam(self.D.parameters(), lr=settings.d_lr, **adam)
        self.schedulers = []
        if settings.lr_step:
            every, gamma = settings.lr_step
            self.schedulers = [torch.optim.lr_scheduler.StepLR(o, int(every), gamma) for o in (self.g_opt, self.d_opt)]

    # -- state ---------------------------------------------------------------------------------

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples are drawn from: the EMA copy when enabled, with its BatchNorm
        statistics recomputed from its own weights when ``gan.standing_stats`` (histosynth.generators.training.ema).
        The recomputed copy is cached until the next generator step."""
        if self.ema is None:
            return self.generator
        if not self.settings.standing_stats:
            return self.ema.module
        updates = int(self.ema.n_averaged)
        if self._standing is None or self._standing[0] != updates:
            seed = derive_seed(self.settings.seed, "standing-statistics")
            copy = with_standing_statistics(self.ema.module, self.n_classes, self.settings.latent_dim,
                                            self.settings.batch_size, seed, self.runtime.device)
            self._standing = (updates, copy)
        return self._standing[1]

    def state_dict(self) -> dict:
        state = {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_opt": self.g_opt.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    # -- steps ---------------------------------------------------------------------------------

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.settings.latent_dim, device=self.runtime.device)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.settings.diffaugment) if self.settings.diffaugment else x

    def discriminator_step(self, real: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One D update; returns (loss incl. weighted penalty, unweighted penalty), detached."""
        with torch.no_grad(), self.runtime.autocast():
            fake = self.G(self._noise(len(y)), y).float()
        real_in, fake_in = self._augment(real), self._augment(fake)
        with self.runtime.autocast():
            loss = discriminator_loss(self.settings.loss, self.D(real_in, y), self.D(fake_in, y))
        penalty = torch.zeros((), device=real.device)
        if self.settings.loss == "wgan-gp":
            penalty = gradient_penalty(self.D, real_in, fake_in, y)  # in fp32: second derivatives are fragile
            loss = loss + self.settings.gp_weight * penalty
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        return loss.detach(), penalty.detach()

    def generator_step(self, real: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One G update (D frozen and not synchronised across processes); returns the loss, detached.

        With the perceptual loss (ascgan), each fake is also pulled towards the VGG-19 features
        of the real image of the same class at its position in the batch.
        """
        self.D.requires_grad_(False)
        no_sync = self.D.no_sync() if isinstance(self.D, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()
        with no_sync, self.runtime.autocast():
            fake = self.G(self._noise(len(y)), y)
            loss = generator_loss(self.settings.loss, self.D(self._augment(fake), y))
            if self.perceptual is not None:
                loss = loss + self.perceptual(fake, real)
        self.D.requires_grad_(True)
        self.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.g_opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.generator)
        return loss.detach()

    # -- epoch ---------------------------------------------------------------------------------

    def run_epoch(self, batches: EpochBatches, epoch: int, progress: EpochProgress | None = None) -> EpochResult:
        """Train on ``batches`` (``(images, labels)`` on the device) of epoch ``epoch`` (0-based).

        All randomness of the epoch (noise, DiffAugment, penalty mixing) comes from torch's
        RNG reseeded from (seed, epoch, rank), so resuming at an epoch boundary is exact.
        G steps follow every ``n_critic``-th D step counted across epochs, so a tiny data set
        with fewer batches than ``n_critic`` still trains the generator.
        """
        torch.manual_seed(derive_seed(self.settings.seed, "train", epoch, self.runtime.rank))
        self.G.train()
        self.D.train()
        device = self.runtime.device
        sums = torch.zeros(3, device=device)  # d_loss, g_loss, penalty
        g_steps = 0
        bad_step = torch.full((), -1, dtype=torch.long, device=device)
        first_step = epoch * len(batches)
        for i, (real, y) in enumerate(batches):
            d_loss, penalty = self.discriminator_step(real, y)
            sums[0] += d_loss
            sums[2] += penalty
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(d_loss), i, bad_step)
            if (first_step + i + 1) % self.settings.n_critic == 0:
                g_loss = self.generator_step(real, y)
                sums[1] += g_loss
                g_steps += 1
                bad_step = torch.where((bad_step < 0) & ~torch.isfinite(g_loss), i, bad_step)
            if progress is not None:
                progress.update(len(y) * self.runtime.world_size)
        with warnings.catch_warnings():
            # StepLR counts epochs; an epoch without a G step (n_critic > batches) is not a misuse.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
            for scheduler in self.schedulers:
                scheduler.step()
        sums = self.runtime.all_mean(sums)
        d_loss, g_loss, penalty = sums.tolist()  # the epoch's one host sync
        n = max(1, len(batches))
        return EpochResult(
            d_loss=d_loss / n,
            g_loss=g_loss / g_steps if g_steps else None,
            gradient_penalty=penalty / n,
            images=batches.n_images * self.runtime.world_size,
            bad_step=int(bad_step),
        )
