"""Adversarial losses and the gradient penalty, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from histosynth.gan.losses import discriminator_loss, generator_loss, gradient_penalty


class LinearCritic(nn.Module):
    """D(x, y) = <w, x> + b_y: its input gradient is w everywhere, so its norm is ||w||."""

    def __init__(self, n_features: int, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)
        self.class_bias = nn.Embedding(3, 1)
        with torch.no_grad():
            self.linear.weight.mul_(scale)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)).squeeze(1) + self.class_bias(y).squeeze(1)


@pytest.mark.parametrize("scale", [0.1, 1.0, 25.0])
def test_gradient_penalty_of_a_linear_critic_is_weight_norm_minus_one_squared(scale: float) -> None:
    torch.manual_seed(0)
    critic = LinearCritic(3 * 8 * 8, scale)
    real, fake = torch.rand(5, 3, 8, 8), torch.rand(5, 3, 8, 8)
    penalty = gradient_penalty(critic, real, fake, torch.tensor([0, 1, 2, 0, 1]))
    expected = (critic.linear.weight.norm() - 1) ** 2
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_backpropagates_into_the_critic() -> None:
    torch.manual_seed(0)
    critic = LinearCritic(12, 3.0)
    gradient_penalty(critic, torch.rand(4, 12), torch.rand(4, 12), torch.zeros(4, dtype=torch.long)).backward()
    assert critic.linear.weight.grad is not None and critic.linear.weight.grad.abs().sum() > 0


def test_bce_losses_at_an_undecided_discriminator_are_log2() -> None:
    zeros = torch.zeros(6)
    assert discriminator_loss("bce", zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert generator_loss("bce", zeros).item() == pytest.approx(math.log(2))


def test_bce_loss_saturates_for_a_confident_correct_discriminator() -> None:
    assert discriminator_loss("bce", torch.full((4,), 30.0), torch.full((4,), -30.0)).item() < 1e-10


def test_hinge_loss_ignores_scores_beyond_the_margin() -> None:
    real, fake = torch.tensor([1.5, 3.0]), torch.tensor([-1.0, -4.0])
    assert discriminator_loss("hinge", real, fake).item() == 0.0
    real, fake = torch.tensor([0.5, 3.0]), torch.tensor([0.0, -4.0])
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(0.25 + 0.5)
    assert generator_loss("hinge", torch.tensor([1.0, -3.0])).item() == pytest.approx(1.0)


def test_wasserstein_loss_is_the_score_gap() -> None:
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert discriminator_loss("wgan-gp", real, fake).item() == pytest.approx(0.0 - 3.0)
    assert generator_loss("wgan-gp", fake).item() == pytest.approx(0.0)


def test_unknown_loss_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown loss kind 'lsgan'"):
        discriminator_loss("lsgan", torch.zeros(2), torch.zeros(2))  # type: ignore[arg-type]
