"""Exponential moving average of the generator's weights, the model used for sampling.

Built on ``torch.optim.swa_utils.AveragedModel``: ``ema.update_parameters(generator)`` after each
generator step sets ``avg = decay * avg + (1 - decay) * current`` for every parameter and buffer
(BatchNorm running statistics and spectral-norm vectors included, so the averaged model is
usable in eval mode as is). Under DDP pass the wrapped module (``ddp.module``).
``ema.module`` is the averaged generator.

Averaged BatchNorm running statistics are not the statistics of the averaged weights'
activations: the running variance averages the variance the *raw* generators had step by step,
which is larger than that of the smoother averaged weights, so eval-mode samples come out with
shrunken contrast and diversity. :func:`with_standing_statistics` recomputes them from the
averaged weights themselves (BigGAN's "standing statistics"); sampling uses that copy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

DEFAULT_DECAY = 0.999


def _warmup_ema_multi_avg_fn(decay: float):
    """EMA whose n-th update uses ``min(decay, (1 + n) / (10 + n))`` (TensorFlow's num_updates rule).

    With a fixed 0.999 the average of a run of a few hundred G steps is still mostly the
    initial weights; the warm-up lets it follow the generator early and settle to ``decay``.
    The decay is computed on the device from AveragedModel's update counter: no host sync.
    """

    @torch.no_grad()
    def ema_update(ema_params: list[torch.Tensor], params: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        weight = 1 - torch.clamp((1 + n_averaged) / (10 + n_averaged), max=decay)
        for averaged, current in zip(ema_params, params, strict=True):
            if averaged.is_floating_point():
                averaged.lerp_(current, weight.to(averaged.dtype))
            else:  # integer buffers (BatchNorm's batch counter) follow the generator
                averaged.copy_(current)

    return ema_update


def build_generator_ema(generator: nn.Module, decay: float = DEFAULT_DECAY, warmup: bool = False) -> AveragedModel:
    """An EMA copy of ``generator`` that starts equal to it (not from its own random init).

    ``warmup``: lower the decay for the first updates (see :func:`_warmup_ema_multi_avg_fn`).
    """
    average = _warmup_ema_multi_avg_fn(decay) if warmup else get_ema_multi_avg_fn(decay)
    ema = AveragedModel(generator, multi_avg_fn=average, use_buffers=True)
    ema.update_parameters(generator)  # AveragedModel's first update copies; later ones average
    return ema.requires_grad_(False)


# Batches of the standing-statistics pass: their average is the running statistic (momentum None).
STANDING_BATCHES = 16


@torch.no_grad()
def with_standing_statistics(generator: nn.Module, n_classes: int, latent_dim: int, batch_size: int, seed: int,
                             device: torch.device) -> nn.Module:
    """A copy of ``generator`` (eval mode) whose BatchNorm running statistics are the average of the
    batch statistics over :data:`STANDING_BATCHES` class-balanced batches of seeded noise (drawn on the
    CPU, so the same on every device). A generator without BatchNorm is copied unchanged."""
    model = copy.deepcopy(generator)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    noise = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch_size) % n_classes
    for _ in range(STANDING_BATCHES):
        z = torch.randn(batch_size, latent_dim, generator=noise)
        model(z.to(device), labels.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()
