"""Adversarial losses on raw discriminator scores (``D(x, y) -> [B]``, or ``[B, N]`` patch logits, no sigmoid;
every loss is a mean over all scores).

- ``bce``: non-saturating GAN loss with the sigmoid folded into the loss
  (``softplus(-s) = -log sigmoid(s)``), numerically safe under mixed precision.
- ``hinge``: SAGAN/BigGAN hinge loss.
- ``wgan-gp``: Wasserstein critic loss; add :func:`gradient_penalty` times its weight (10).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from histosynth.generators.gan.models.registry import LossKind


def discriminator_loss(kind: LossKind, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    if kind == "bce":
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    if kind == "hinge":
        return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()
    if kind == "wgan-gp":
        return fake_scores.mean() - real_scores.mean()
    raise ValueError(f"unknown loss kind {kind!r}")


def generator_loss(kind: LossKind, fake_scores: torch.Tensor) -> torch.Tensor:
    fake_scores = fake_scores.float()
    if kind == "bce":
        return F.softplus(-fake_scores).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake_scores.mean()
    raise ValueError(f"unknown loss kind {kind!r}")


def gradient_penalty(
    critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``mean((||grad_x D(x_hat, y)||_2 - 1)^2)`` on random
    interpolates ``x_hat`` of real and fake images (mixing weights from torch's RNG).

    The result keeps the graph (``create_graph=True``) so it can be backpropagated into D.
    """
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed, y)
    (grads,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
    return ((grads.flatten(1).float().norm(2, dim=1) - 1.0) ** 2).mean()
