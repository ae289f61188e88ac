"""Rudi's random choices: which operations an image gets and with what values.

Rudi (the thesis' library) wraps Augmentor; this draws the same kinds of values from the
same ranges, each operation independently with its own probability, in the thesis' order:
rotation, flip, zoom, skew, distortion.
"""

from __future__ import annotations

import numpy as np

from histosynth.augment.ops import Distort, Flip, Operation, Rotate, Skew, Zoom
from histosynth.config.augment import AugmentParams, DistortionParams, SkewParams

# Corner moves are (dx, dy) unit offsets of the top-left, top-right, bottom-right and
# bottom-left corners, always outwards. Augmentor's tilts: two corners of a side move apart.
SKEW_TILTS: dict[str, tuple[tuple[int, int], ...]] = {
    "tilt-left": ((0, -1), (0, 0), (0, 0), (0, 1)),
    "tilt-right": ((0, 0), (0, -1), (0, 1), (0, 0)),
    "tilt-top": ((-1, 0), (1, 0), (0, 0), (0, 0)),
    "tilt-bottom": ((0, 0), (0, 0), (1, 0), (-1, 0)),
}
_CORNERS = {"top-left": (-1, -1), "top-right": (1, -1), "bottom-right": (1, 1), "bottom-left": (-1, 1)}


def _corner_move(corner: str, axis: str) -> tuple[tuple[int, int], ...]:
    ox, oy = _CORNERS[corner]
    return tuple(((ox, 0) if axis == "x" else (0, oy)) if name == corner else (0, 0) for name in _CORNERS)


# Augmentor's corner skews: one corner moves outwards along x or y.
SKEW_CORNERS: dict[str, tuple[tuple[int, int], ...]] = {
    f"corner-{corner}-{axis}": _corner_move(corner, axis) for corner in _CORNERS for axis in ("x", "y")
}
# Augmentor moves distortion vertices by ``magnitude`` pixels of the image it is given; our
# tiles are 28-224 px, so the move is scaled from an image this wide to look the same at every
# data.image_size (magnitude 8 moves a 32 px tile's vertices by up to 1 px).
DISTORTION_REFERENCE_SIZE = 256
# Augmentor's skew_type="RANDOM" picks one of TILT, TILT_LEFT_RIGHT, TILT_TOP_BOTTOM, CORNER
# uniformly, so a tilt (each side equally likely) comes up 3 times in 4.
_TILT_SHARE = 0.75


def draw_operations(params: AugmentParams, rng: np.random.Generator, height: int, width: int) -> list[Operation]:
    """The operations one augmented image gets; each is included with its own probability."""
    operations: list[Operation] = []
    if rng.random() < params.rotate.p:
        operations.append(Rotate(float(rng.uniform(-params.rotate.max_degrees, params.rotate.max_degrees))))
    if rng.random() < params.flip.p:
        operations.append(Flip("left-right" if rng.random() < 0.5 else "top-bottom"))
    if rng.random() < params.zoom.p:
        operations.append(Zoom(float(rng.uniform(params.zoom.min, params.zoom.max))))
    if rng.random() < params.skew.p:
        operations.append(_draw_skew(params.skew, rng, height, width))
    if rng.random() < params.distortion.p:
        operations.append(_draw_distortion(params.distortion, rng, height, width))
    return operations


def _draw_skew(params: SkewParams, rng: np.random.Generator, height: int, width: int) -> Skew:
    """Corners move outwards by up to ``magnitude`` times the longer side, as in Augmentor."""
    amount = float(rng.uniform(0.0, params.magnitude * max(height, width)))
    table = SKEW_TILTS if rng.random() < _TILT_SHARE else SKEW_CORNERS
    kind = list(table)[rng.integers(len(table))]
    offsets = tuple((dx * amount, dy * amount) for dx, dy in table[kind])
    return Skew(kind, amount, offsets)


def _draw_distortion(params: DistortionParams, rng: np.random.Generator, height: int, width: int) -> Distort:
    """Each inner vertex of a grid x grid mesh moves by up to ``magnitude`` (scaled) pixels in x and y."""
    inner = params.grid - 1
    moves = np.zeros((params.grid + 1, params.grid + 1, 2))
    moves[1:-1, 1:-1] = rng.uniform(-params.magnitude, params.magnitude, (inner, inner, 2))
    moves *= np.array([width, height]) / DISTORTION_REFERENCE_SIZE
    return Distort(moves)
