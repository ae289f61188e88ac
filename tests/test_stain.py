"""HED stain jitter (histosynth.augment.stain) and the strong baseline's batch augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import hed_from_rgb, rgb2hed, rgb_from_hed

from histosynth.augment.stain import HED_FROM_RGB, RGB_FROM_HED, hed_jitter, hed_to_rgb, rgb_to_hed
from histosynth.benchmark.strong import StrongAugment


def every_colour(step: int = 5) -> torch.Tensor:
    """(1, 3, H, W) uint8: a grid of RGB colours 0, step, 2 step ... 255 in each channel."""
    levels = torch.arange(0, 256, step)
    return torch.cartesian_prod(levels, levels, levels).T.reshape(1, 3, len(levels), -1).to(torch.uint8)


def test_the_matrices_and_the_conversion_are_scikit_images():
    assert np.allclose(RGB_FROM_HED.numpy(), rgb_from_hed) and np.allclose(HED_FROM_RGB.numpy(), hed_from_rgb)
    rgb = every_colour().permute(0, 2, 3, 1)[0].numpy() / 255.0
    ours = rgb_to_hed(torch.from_numpy(rgb)).numpy()
    assert np.allclose(np.maximum(ours, 0), rgb2hed(rgb), atol=1e-12)  # rgb2hed clips at 0; the jitter does not


def test_hed_to_rgb_inverts_rgb_to_hed():
    rgb = torch.rand((64, 64, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.99 + 0.01
    assert torch.allclose(hed_to_rgb(rgb_to_hed(rgb)), rgb, atol=1e-12)


def test_zero_strength_gives_every_image_back_byte_for_byte():
    images = every_colour(3)
    assert torch.equal(hed_jitter(images, 0.0, 0.0, torch.Generator().manual_seed(1)), images)


def test_the_jitter_is_seeded_per_image_and_grows_with_its_strength():
    images = torch.randint(60, 230, (16, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    once, again = (hed_jitter(images, 0.05, 0.01, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(once, again)
    assert not torch.equal(once, hed_jitter(images, 0.05, 0.01, torch.Generator().manual_seed(8)))
    assert not torch.equal(once[0] - images[0].to(torch.int16), once[1] - images[1].to(torch.int16))

    def change(scale: float, shift: float) -> float:
        out = hed_jitter(images, scale, shift, torch.Generator().manual_seed(7))
        return float((out.float() - images.float()).abs().mean())

    assert 0 < change(0.02, 0.0) < change(0.2, 0.0) and 0 < change(0.0, 0.005) < change(0.0, 0.05)


def test_a_stain_scale_leaves_white_white():
    white = torch.full((4, 3, 2, 2), 255, dtype=torch.uint8)  # no stain: zero density, whatever alpha
    assert torch.equal(hed_jitter(white, 0.5, 0.0, torch.Generator().manual_seed(0)), white)


@pytest.mark.parametrize("seed", [0, 1])
def test_strong_augment_is_a_function_of_the_generator_and_leaves_torchs_global_generator_alone(seed: int):
    images = torch.randint(0, 256, (32, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    augment = StrongAugment(hed_scale=0.05, hed_shift=0.01)
    torch.manual_seed(123)
    first = augment(images, torch.Generator().manual_seed(seed))
    after = torch.rand(1)
    torch.manual_seed(123)
    second = augment(images, torch.Generator().manual_seed(seed))
    assert torch.equal(first, second) and torch.equal(torch.rand(1), after)
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert (first != images).flatten(1).any(1).float().mean() > 0.5  # most images changed, each its own way


def test_without_a_policy_the_strong_augmentation_is_the_stain_jitter_alone():
    images = torch.randint(0, 256, (8, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(3)
    torch.randint(0, 2**62, (1,), generator=generator)  # the policy's seed, drawn whatever the policy
    expected = hed_jitter(images, 0.05, 0.01, generator)
    assert torch.equal(StrongAugment(0.05, 0.01, "none")(images, torch.Generator().manual_seed(3)), expected)
    assert not torch.equal(StrongAugment(0.05, 0.01, "rand_augment")(images, torch.Generator().manual_seed(3)),
                           expected)


def test_an_unknown_policy_is_refused_naming_the_allowed_ones():
    from histosynth.config import params_from_mapping
    from histosynth.errors import ConfigError

    with pytest.raises(ConfigError, match=r"benchmark.strong.policy = 'autoaugment': Input should be "
                                          r"'trivial_augment_wide', 'rand_augment' or 'none'"):
        params_from_mapping({"benchmark": {"strong": {"policy": "autoaugment"}}})
