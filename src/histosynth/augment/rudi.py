"""Rudi's random choices: which operations an image gets and with what values.

Rudi (the thesis' library) wraps Augmentor; this draws the same kinds of values from the
same ranges, each operation independently with its own probability, in the thesis' order:
rotation, flip, zoom, skew, distortion.
"""

from __future__ import annotations

import numpy as np

from histosynth.augment.ops import Distort, Flip, Operation, Rotate, Skew, Zoom
from histosynth.config.augment import AugmentParams, DistortionParams, SkewParams

# Augmentor's tilts: the two corners of one side move apart along that side.
# Corner offsets are (dx, dy) unit moves of top-left, top-right, bottom-right, bottom-left.
_TILTS: dict[str, tuple[tuple[int, int], ...]] = {
    "tilt-left": ((0, -1), (0, 0), (0, 0), (0, 1)),
    "tilt-right": ((0, 0), (0, -1), (0, 1), (0, 0)),
    "tilt-top": ((-1, 0), (1, 0), (0, 0), (0, 0)),
    "tilt-bottom": ((0, 0), (0, 0), (1, 0), (-1, 0)),
}
# Augmentor's corner skews: one corner moves outwards along one of its two sides.
_CORNER_NAMES = ("top-left", "top-right", "bottom-right", "bottom-left")
_CORNER_OUTWARDS = ((-1, -1), (1, -1), (1, 1), (-1, 1))
_CORNER_SKEWS: dict[str, tuple[tuple[int, int], ...]] = {
    f"corner-{_CORNER_NAMES[c]}-{axis}": tuple(
        ((_CORNER_OUTWARDS[c][0], 0) if axis == "x" else (0, _CORNER_OUTWARDS[c][1])) if i == c else (0, 0)
        for i in range(4)
    )
    for c in range(4)
    for axis in ("x", "y")
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
    table = _TILTS if rng.random() < _TILT_SHARE else _CORNER_SKEWS
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
