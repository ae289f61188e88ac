"""Exponential moving average of the generator's weights, the model used for sampling.

Built on ``torch.optim.swa_utils.AveragedModel``: ``ema.update_parameters(generator)`` after each
generator step sets ``avg = decay * avg + (1 - decay) * current`` for every parameter and buffer
(BatchNorm running statistics and spectral-norm vectors included, so the averaged model is
usable in eval mode as is). Under DDP pass the wrapped module (``ddp.module``).
``ema.module`` is the averaged generator; save ``ema.module.state_dict()`` for sampling.
"""

from __future__ import annotations

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
