"""The five Rudi/Augmentor operations, each with its random draws already made.

An operation is a small frozen record (what to do, e.g. ``Rotate(-7.2)``) that applies itself
to a (3, H, W) uint8 tensor with ``torchvision.transforms.v2.functional``, and prints itself
for the manifest's ``ops`` column. Drawing the values is :mod:`histosynth.augment.rudi`'s job.

No operation leaves an empty or constant-colour border (the GAN would learn it): rotation and
zoom only ever look inside the image, skew pushes corners outwards as Augmentor does, and the
few samples that fall in the half-pixel rim are taken from the nearest edge pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as nnf
import torchvision.transforms.v2.functional as F
from torchvision.transforms.v2 import InterpolationMode

BILINEAR = InterpolationMode.BILINEAR
FlipDirection = Literal["left-right", "top-bottom"]


class Operation(Protocol):
    def apply(self, image: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Rotate:
    """Counter-clockwise rotation, enlarged just enough that no corner is left empty.

    Augmentor rotates, crops the largest axis-aligned rectangle inside the rotated image and
    resizes it back; scaling by that same factor in the one affine resampling is equivalent
    and blurs less.
    """

    degrees: float

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        # Half-extents of the pixel-centre grid: its corners must map onto input pixel centres.
        half_w, half_h = max(width - 1, 1) / 2, max(height - 1, 1) / 2
        rad = math.radians(abs(self.degrees))
        cos, sin = math.cos(rad), math.sin(rad)
        scale = max(cos + sin * half_h / half_w, cos + sin * half_w / half_h)
        # F.affine turns clockwise for positive angles; F.rotate, PIL and Augmentor the other way.
        return F.affine(image, angle=-self.degrees, translate=[0.0, 0.0], scale=scale, shear=[0.0, 0.0],
                        interpolation=BILINEAR)

    def __str__(self) -> str:
        return f"rotate({self.degrees:+.1f})"


@dataclass(frozen=True)
class Flip:
    direction: FlipDirection

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        return F.horizontal_flip(image) if self.direction == "left-right" else F.vertical_flip(image)

    def __str__(self) -> str:
        return f"flip({self.direction})"


@dataclass(frozen=True)
class Zoom:
    """Enlarge about the centre by ``factor`` (>= 1) and keep the central window of the original size."""

    factor: float

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        return F.affine(image, angle=0.0, translate=[0.0, 0.0], scale=self.factor, shear=[0.0, 0.0],
                        interpolation=BILINEAR)

    def __str__(self) -> str:
        return f"zoom({self.factor:.2f})"


@dataclass(frozen=True)
class Skew:
    """Augmentor's skew: some image corners are pinned to points outside the frame.

    ``offsets`` are the (dx, dy) pixel moves of the top-left, top-right, bottom-right and
    bottom-left corners; each points outwards (or is zero), so the frame still shows image
    content everywhere: a perspective tilt with a slight zoom, never an empty wedge.
    """

    kind: str
    amount: float
    offsets: tuple[tuple[float, float], ...]

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        # One replicated edge pixel gives the output's half-pixel rim real neighbours to blend
        # with (grid sampling would otherwise mix in black there); points shift by the margin.
        margin = 1
        padded = F.pad(image, [margin], padding_mode="edge")
        corners = [[0.0, 0.0], [float(width), 0.0], [float(width), float(height)], [0.0, float(height)]]
        start = [[x + margin, y + margin] for x, y in corners]
        end = [[x + dx + margin, y + dy + margin] for (x, y), (dx, dy) in zip(corners, self.offsets)]
        warped = F.perspective(padded, startpoints=start, endpoints=end, interpolation=BILINEAR)
        return F.crop(warped, margin, margin, height, width)

    def __str__(self) -> str:
        return f"skew({self.kind},{self.amount:.1f})"


@dataclass(frozen=True, eq=False)
class Distort:
    """Augmentor's random_distortion: a coarse grid of point moves, smoothly spread over the image.

    ``grid_moves`` is a (rows + 1, cols + 1, 2) array of (dx, dy) pixel moves of the grid's
    vertices (zero on the border, as in Augmentor, so the frame stays put). It is upsampled
    bilinearly to one move per pixel, Augmentor's piecewise mesh in smooth form, and
    torchvision's elastic warp resamples the image along it.
    """

    grid_moves: np.ndarray

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        coarse = torch.from_numpy(np.ascontiguousarray(self.grid_moves, dtype=np.float32)).permute(2, 0, 1)
        dense = nnf.interpolate(coarse[None], size=(height, width), mode="bilinear", align_corners=True)
        # Pixels -> grid_sample's normalised units (the image spans 2 in each direction).
        dense = dense[0].permute(1, 2, 0) * torch.tensor([2.0 / width, 2.0 / height])
        return F.elastic(image, _clamp_into_image(dense, height, width), interpolation=BILINEAR)

    def __str__(self) -> str:
        rows, cols = self.grid_moves.shape[0] - 1, self.grid_moves.shape[1] - 1
        largest = float(np.abs(self.grid_moves).max()) if self.grid_moves.size else 0.0
        return f"distort({cols}x{rows},{largest:.1f})"


def _clamp_into_image(displacement: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Limit a (H, W, 2) normalised displacement so every sample lands between pixel centres.

    Equivalent to sampling with border replication: moves past the edge take the edge pixel.
    """
    xs = torch.linspace((1 - width) / width, (width - 1) / width, width)
    ys = torch.linspace((1 - height) / height, (height - 1) / height, height)
    identity = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    limit = torch.tensor([(width - 1) / width, (height - 1) / height])
    return (identity + displacement).clamp(-limit, limit).sub(identity)[None]


def apply_all(image: torch.Tensor, operations: list[Operation]) -> torch.Tensor:
    for op in operations:
        image = op.apply(image)
    return image


def describe(operations: list[Operation]) -> str:
    """The manifest's ``ops`` value, e.g. ``rotate(-7.2)|zoom(1.31)`` ('' for none)."""
    return "|".join(str(op) for op in operations)
