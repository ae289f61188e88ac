"""Rudi's random draws and the per-class balancing plan."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from histosynth.augment.ops import Distort, Flip, Rotate, Skew, Zoom, describe
from histosynth.augment.plan import plan_class
from histosynth.augment.rudi import SKEW_CORNERS, SKEW_TILTS, draw_operations
from histosynth.config.augment import AugmentParams

ONLY = {name: {"p": 0.0} for name in ("rotate", "flip", "zoom", "skew", "distortion")}


def only(name: str, **settings: float) -> AugmentParams:
    return AugmentParams.model_validate({**ONLY, name: {"p": 1.0, **settings}})


def draws(params: AugmentParams, n: int = 400, size: int = 32) -> list[list]:
    return [draw_operations(params, np.random.default_rng([7, i]), size, size) for i in range(n)]


def test_probability_zero_draws_nothing_and_one_draws_every_operation() -> None:
    assert all(ops == [] for ops in draws(AugmentParams.model_validate(ONLY)))
    all_on = AugmentParams.model_validate({name: {"p": 1.0} for name in ONLY})
    for ops in draws(all_on, n=20):
        assert [type(op) for op in ops] == [Rotate, Flip, Zoom, Skew, Distort]


def test_each_operation_comes_up_about_as_often_as_its_probability() -> None:
    counts = Counter(type(op) for ops in draws(AugmentParams(), n=1000) for op in ops)
    for kind in (Rotate, Flip, Zoom, Skew, Distort):
        assert 430 <= counts[kind] <= 570


def test_values_stay_in_their_ranges() -> None:
    rotations = [op.degrees for ops in draws(only("rotate", max_degrees=10)) for op in ops]
    assert max(map(abs, rotations)) <= 10 and min(rotations) < -8 and max(rotations) > 8
    zooms = [op.factor for ops in draws(only("zoom", min=1.1, max=1.3)) for op in ops]
    assert 1.1 <= min(zooms) < 1.13 and 1.27 < max(zooms) <= 1.3
    flips = Counter(op.direction for ops in draws(only("flip")) for op in ops)
    assert set(flips) == {"left-right", "top-bottom"} and min(flips.values()) > 150


def test_skews_follow_augmentor_random_mix() -> None:
    skews = [op for ops in draws(only("skew", magnitude=0.5), n=2000) for op in ops]
    assert all(0 <= s.amount <= 0.5 * 32 for s in skews)
    assert all(max(abs(v) for xy in s.offsets for v in xy) == pytest.approx(s.amount) for s in skews)
    kinds = Counter(s.kind for s in skews)
    assert set(kinds) == set(SKEW_TILTS) | set(SKEW_CORNERS)
    tilt_share = sum(kinds[k] for k in SKEW_TILTS) / len(skews)
    assert 0.70 < tilt_share < 0.80  # Augmentor: TILT, TILT_LEFT_RIGHT, TILT_TOP_BOTTOM or CORNER


def test_skew_corners_only_move_outwards() -> None:
    outwards = ((-1, -1), (1, -1), (1, 1), (-1, 1))  # top-left, top-right, bottom-right, bottom-left
    for unit in [*SKEW_TILTS.values(), *SKEW_CORNERS.values()]:
        assert sum(dx != 0 or dy != 0 for dx, dy in unit) in (1, 2)
        for (dx, dy), (ox, oy) in zip(unit, outwards):
            assert dx in (0, ox) and dy in (0, oy)


def test_distortion_moves_inner_vertices_by_at_most_the_scaled_magnitude() -> None:
    for size in (32, 128):
        moves = [op.grid_moves for ops in draws(only("distortion", grid=8, magnitude=8), n=50, size=size)
                 for op in ops]
        for m in moves:
            assert m.shape == (9, 9, 2)
            assert not m[[0, -1]].any() and not m[:, [0, -1]].any()
        largest = max(np.abs(m).max() for m in moves)
        assert 0.9 * 8 * size / 256 < largest <= 8 * size / 256  # Augmentor's 8 px at 256 px, scaled


def test_same_generator_seed_draws_the_same_operations() -> None:
    first = [describe(ops) for ops in draws(AugmentParams(), n=50)]
    assert first == [describe(ops) for ops in draws(AugmentParams(), n=50)]
    assert len(set(first)) > 40


@pytest.mark.parametrize("n_originals, per_class", [(24, 200), (7, 30), (5, 5), (1, 4)])
def test_plan_keeps_every_original_and_spreads_children_evenly(n_originals: int, per_class: int) -> None:
    plan = plan_class(n_originals, per_class, np.random.default_rng(0))
    assert plan.kept.tolist() == list(range(n_originals))
    assert len(plan.kept) + len(plan.parents) == per_class
    children = np.bincount(plan.parents, minlength=n_originals)
    assert children.max() - children.min() <= 1


def test_plan_subsamples_when_there_are_more_originals_than_wanted() -> None:
    plan = plan_class(50, 12, np.random.default_rng(0))
    assert len(plan.parents) == 0
    assert len(plan.kept) == 12 == len(set(plan.kept.tolist()))
    assert plan.kept.tolist() == sorted(plan.kept.tolist()) and plan.kept.max() < 50
    assert plan.kept.tolist() != list(range(12))
    assert plan_class(50, 12, np.random.default_rng(0)).kept.tolist() == plan.kept.tolist()
