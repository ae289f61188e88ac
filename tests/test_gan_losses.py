"""Training-side helpers: adversarial losses and gradient penalty (checked against hand-computed
values), DiffAugment, generator EMA and the VGG-19 perceptual loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import vgg19

from histosynth.errors import ConfigError
from histosynth.generators.gan.diffaugment import diff_augment
from histosynth.generators.gan.losses import discriminator_loss, generator_loss, gradient_penalty
from histosynth.generators.gan.models import build_generator
from histosynth.generators.gan.perceptual import LAYER_WEIGHTS, VGG19_WEIGHTS_FILE, PerceptualLoss
from histosynth.generators.training.ema import build_generator_ema


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


# --- DiffAugment -------------------------------------------------------------------------


def test_empty_policy_is_the_identity() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(diff_augment(x, []), x)


@pytest.mark.parametrize("policy", [["color"], ["translation"], ["cutout"], ["color", "translation", "cutout"]])
def test_diff_augment_keeps_shape_and_passes_gradients(policy: list[str]) -> None:
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    torch.manual_seed(0)
    out = diff_augment(x, policy)
    assert out.shape == x.shape
    assert not torch.equal(out, x)
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_diff_augment_is_reproducible_under_manual_seed() -> None:
    x = torch.rand(4, 3, 16, 16)
    policy = ["color", "translation", "cutout"]
    torch.manual_seed(7)
    first = diff_augment(x, policy)
    torch.manual_seed(7)
    assert torch.equal(first, diff_augment(x, policy))


def test_translation_moves_content_by_at_most_an_eighth_and_fills_with_zeros() -> None:
    size = 16
    x = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size).expand(32, 3, size, size) + 1
    torch.manual_seed(0)
    out = diff_augment(x, ["translation"])
    assert (out == 0).any()
    for image in out[:, 0]:
        kept = image[image > 0] - 1
        n_rows = int(kept.div(size, rounding_mode="floor").unique().numel())
        n_cols = int((kept % size).unique().numel())
        assert n_rows * n_cols == kept.numel()  # a rectangular window of the original survives
        assert min(n_rows, n_cols) >= size - size // 8


def test_cutout_blanks_at_most_a_quarter_of_each_image() -> None:
    torch.manual_seed(0)
    out = diff_augment(torch.ones(64, 3, 16, 16), ["cutout"])
    blank = (out == 0).all(dim=1).float().mean(dim=(1, 2))
    assert (blank > 0).all() and (blank <= 0.25).all()
    assert (blank == 0.25).any()


def test_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'blur' unknown; choose from color, translation, cutout"):
        diff_augment(torch.zeros(1, 3, 8, 8), ["color", "blur"])


# --- generator EMA ------------------------------------------------------------------------


def test_ema_starts_as_the_generator_and_moves_by_one_minus_decay() -> None:
    torch.manual_seed(0)
    generator = build_generator("dcgan", 3, 28, 8, 2)
    generator(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))  # updates BN running stats
    ema = build_generator_ema(generator, decay=0.9)
    old = {k: v.clone() for k, v in generator.state_dict().items()}
    assert all(torch.equal(ema.module.state_dict()[k], v) for k, v in old.items())

    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p))
    generator(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))
    ema.update_parameters(generator)

    new = generator.state_dict()
    averaged = ema.module.state_dict()
    floats = [k for k, v in new.items() if v.is_floating_point()]
    assert any("running_mean" in k for k in floats)
    for key in floats:
        torch.testing.assert_close(averaged[key], 0.9 * old[key] + 0.1 * new[key])
    assert not any(p.requires_grad for p in ema.parameters())


# --- VGG-19 perceptual loss ---------------------------------------------------------------


def save_small_vgg_state(path: Path, extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A VGG-19 state dict holding only the ``features.*`` tensors the loss reads (random values)."""
    with torch.device("meta"):
        trunk = vgg19(weights=None).features[: max(LAYER_WEIGHTS) + 1]
    gen = torch.Generator().manual_seed(0)
    state = {f"features.{k}": torch.randn(v.shape, generator=gen) * 0.05 for k, v in trunk.state_dict().items()}
    torch.save({**state, **(extra or {})}, path)
    return state


def test_perceptual_loss_loads_weights_and_compares_features(tmp_path: Path) -> None:
    weights = tmp_path / "vgg.pth"
    state = save_small_vgg_state(weights, extra={"classifier.0.bias": torch.zeros(4)})
    loss_fn = PerceptualLoss(weights)
    assert torch.equal(loss_fn.features[0].weight, state["features.0.weight"])
    assert not any(p.requires_grad for p in loss_fn.parameters())

    torch.manual_seed(0)
    target = torch.rand(2, 3, 28, 28) * 2 - 1
    generated = (torch.rand(2, 3, 28, 28) * 2 - 1).requires_grad_(True)
    assert loss_fn(target, target).item() == 0.0
    loss = loss_fn(generated, target)
    assert loss.item() > 0
    loss.backward()
    assert generated.grad is not None and generated.grad.abs().sum() > 0


def test_perceptual_loss_names_the_missing_weights_file(tmp_path: Path) -> None:
    missing = tmp_path / "weights" / VGG19_WEIGHTS_FILE
    with pytest.raises(ConfigError, match=f"vgg19-dcbb9e9d.pth.*no file at {missing}"):
        PerceptualLoss(missing)


def test_perceptual_loss_rejects_a_state_dict_without_vgg_features(tmp_path: Path) -> None:
    weights = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, weights)
    with pytest.raises(ConfigError, match="is not a VGG-19 state dict.*lacks features.0.bias"):
        PerceptualLoss(weights)
