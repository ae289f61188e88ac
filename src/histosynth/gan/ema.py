"""Exponential moving average of the generator's weights, the model used for sampling.

Built on ``torch.optim.swa_utils.AveragedModel``: ``ema.update_parameters(generator)`` after each
generator step sets ``avg = decay * avg + (1 - decay) * current`` for every parameter and buffer
(BatchNorm running statistics and spectral-norm vectors included, so the averaged model is
usable in eval mode as is). Under DDP pass the wrapped module (``ddp.module``).
``ema.module`` is the averaged generator; save ``ema.module.state_dict()`` for sampling.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

DEFAULT_DECAY = 0.999


def build_generator_ema(generator: nn.Module, decay: float = DEFAULT_DECAY) -> AveragedModel:
    """An EMA copy of ``generator`` that starts equal to it (not from its own random init)."""
    ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.update_parameters(generator)  # AveragedModel's first update copies; later ones average
    return ema.requires_grad_(False)
