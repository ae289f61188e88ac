"""The five augmentation operations: geometry, and no empty or black borders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from histosynth.augment.ops import Distort, Flip, Rotate, Skew, Zoom, apply_all, describe
from histosynth.augment.rudi import SKEW_CORNERS, SKEW_TILTS


@pytest.fixture
def bright() -> torch.Tensor:
    """A bright noisy image: any sample blended with black would fall below its minimum (150)."""
    return torch.randint(150, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def x_gradient(size: int = 32, start: float = 20.0, step: float = 6.0) -> torch.Tensor:
    values = torch.arange(size, dtype=torch.float32) * step + start
    return values.expand(3, size, size).round().to(torch.uint8).contiguous()


@pytest.mark.parametrize("degrees", [-10.0, -3.3, 0.5, 10.0, 37.0])
def test_rotation_leaves_no_black_corners(bright: torch.Tensor, degrees: float) -> None:
    rotated = Rotate(degrees).apply(bright)
    assert rotated.min() >= bright.min()
    assert not torch.equal(rotated, bright)
    white = torch.full_like(bright, 255)
    assert torch.equal(Rotate(degrees).apply(white), white)


def test_rotation_is_counter_clockwise_and_exact_at_right_angles(bright: torch.Tensor) -> None:
    # At 90 degrees the inscribed square is the whole image: a pure pixel permutation.
    assert torch.equal(Rotate(90.0).apply(bright), torch.rot90(bright, 1, dims=(-2, -1)))
    assert torch.equal(Rotate(-90.0).apply(bright), torch.rot90(bright, -1, dims=(-2, -1)))


def test_rotation_of_non_square_image_has_no_black_corners() -> None:
    image = torch.randint(150, 256, (3, 24, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert Rotate(10.0).apply(image).min() >= image.min()


def test_flip_mirrors_the_image(bright: torch.Tensor) -> None:
    assert torch.equal(Flip("left-right").apply(bright), bright.flip(-1))
    assert torch.equal(Flip("top-bottom").apply(bright), bright.flip(-2))


def test_zoom_enlarges_about_the_centre() -> None:
    image = x_gradient()
    zoomed = Zoom(1.5).apply(image)[0, 5].float()
    # Output pixel centre x + 0.5 shows the input at centre + (x + 0.5 - centre) / factor.
    x = torch.arange(32, dtype=torch.float32)
    expected = 20 + 6 * ((x + 0.5 - 16) / 1.5 + 16 - 0.5)
    assert (zoomed - expected).abs().max() <= 1
    assert zoomed[-1] - zoomed[0] < 6 * 31 * 0.7  # a narrower range of the gradient is shown


def test_zoom_keeps_the_centre_and_changes_the_rest(bright: torch.Tensor) -> None:
    zoomed = Zoom(1.3).apply(bright)
    centre = (slice(None), slice(14, 18), slice(14, 18))
    assert (zoomed[centre].float().mean() - bright[centre].float().mean()).abs() < 12
    assert not torch.equal(zoomed, bright)
    assert zoomed.min() >= bright.min()
    assert torch.equal(Zoom(1.0).apply(bright), bright)


@pytest.mark.parametrize("kind", [*SKEW_TILTS, *SKEW_CORNERS])
def test_every_skew_keeps_the_frame_full(bright: torch.Tensor, kind: str) -> None:
    unit = {**SKEW_TILTS, **SKEW_CORNERS}[kind]
    amount = 0.7 * 32
    skewed = Skew(kind, amount, tuple((dx * amount, dy * amount) for dx, dy in unit)).apply(bright)
    assert skewed.min() >= bright.min()
    assert not torch.equal(skewed, bright)
    still = Skew(kind, 0.0, tuple((0.0, 0.0) for _ in unit)).apply(bright)
    assert torch.equal(still, bright)


def test_skew_tilt_left_stretches_the_left_edge() -> None:
    # A vertical gradient: pinning the left corners outside the frame shows a narrower band
    # of rows on the left than on the right.
    image = x_gradient().transpose(-1, -2).contiguous()
    offsets = ((0.0, -10.0), (0.0, 0.0), (0.0, 0.0), (0.0, 10.0))
    skewed = Skew("tilt-left", 10.0, offsets).apply(image)[0].float()
    left_range = skewed[-1, 0] - skewed[0, 0]
    right_range = skewed[-1, -1] - skewed[0, -1]
    assert left_range < 0.8 * right_range


def test_distortion_with_no_moves_is_the_identity(bright: torch.Tensor) -> None:
    assert torch.equal(Distort(np.zeros((9, 9, 2))).apply(bright), bright)


def test_distortion_moves_the_inside_and_pins_the_border(bright: torch.Tensor) -> None:
    moves = np.random.default_rng(0).uniform(-20, 20, (9, 9, 2))  # far more than a cell: must clamp
    moves[[0, -1]] = 0
    moves[:, [0, -1]] = 0
    distorted = Distort(moves).apply(bright)
    assert not torch.equal(distorted[:, 1:-1, 1:-1], bright[:, 1:-1, 1:-1])
    assert torch.equal(distorted[:, 0], bright[:, 0]) and torch.equal(distorted[:, -1], bright[:, -1])
    assert torch.equal(distorted[:, :, 0], bright[:, :, 0]) and torch.equal(distorted[:, :, -1], bright[:, :, -1])
    assert distorted.min() >= bright.min()


def test_a_vertex_move_shifts_only_the_cells_around_it() -> None:
    image = x_gradient()
    moves = np.zeros((9, 9, 2))
    moves[4, 4] = (1.0, 0.0)  # the centre vertex (pixel 15.5) one pixel to the right
    distorted = Distort(moves).apply(image)[0].float()
    # Pixels beside that vertex sample about one pixel further right: one gradient step (6) more.
    assert 4 <= distorted[16, 16] - image[0, 16, 16].float() <= 7
    # The neighbouring vertices (pixels 11.6 and 19.4) stay put, and everything beyond them.
    original = image[0].float()
    assert torch.equal(distorted[:, :12], original[:, :12]) and torch.equal(distorted[:, 20:], original[:, 20:])
    assert torch.equal(distorted[:12], original[:12]) and torch.equal(distorted[20:], original[20:])


def test_apply_all_runs_in_order_and_describe_names_each_step(bright: torch.Tensor) -> None:
    ops = [Flip("left-right"), Rotate(90.0)]
    assert torch.equal(apply_all(bright, ops), torch.rot90(bright.flip(-1), 1, dims=(-2, -1)))
    assert describe(ops) == "flip(left-right)|rotate(+90.0)"
    assert describe([]) == ""
