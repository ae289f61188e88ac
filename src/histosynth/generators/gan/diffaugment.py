"""DiffAugment (Zhao et al. 2020): differentiable augmentation of every image D sees.

The trainer applies the same policy to real and generated images before the discriminator, so
D cannot overfit a small training set and G still gets gradients through the augmentation.
Follows the authors' reference implementation: colour (brightness, saturation, contrast),
translation by up to 1/8 of the image size with zero fill, and cutout of a square half the
image size. Randomness comes from torch's RNG on the images' device, one draw per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from histosynth.errors import ConfigError

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _per_image_uniform(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def _brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_per_image_uniform(x) - 0.5)


def _saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_per_image_uniform(x) * 2) + mean


def _contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_image_uniform(x) + 0.5) + mean


def _grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices [1, H, 1] and column indices [1, 1, W] on the images' device."""
    h, w = x.shape[2:]
    return torch.arange(h, device=x.device)[None, :, None], torch.arange(w, device=x.device)[None, None, :]


def _translation(x: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x.shape
    max_dy, max_dx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (b, 1, 1), device=x.device)
    rows, cols = _grid(x)
    src_rows, src_cols = rows - dy, cols - dx
    inside = (src_rows >= 0) & (src_rows < h) & (src_cols >= 0) & (src_cols < w)
    batch = torch.arange(b, device=x.device)[:, None, None]
    moved = x.permute(0, 2, 3, 1)[batch, src_rows.clamp(0, h - 1), src_cols.clamp(0, w - 1)]
    return moved.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def _cutout(x: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x.shape
    size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top = torch.randint(0, h + (1 - size_h % 2), (b, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + (1 - size_w % 2), (b, 1, 1), device=x.device) - size_w // 2
    rows, cols = _grid(x)
    hole = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~hole)[:, None].to(x.dtype)


AUGMENTATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], ...]] = {
    "color": (_brightness, _saturation, _contrast),
    "translation": (_translation,),
    "cutout": (_cutout,),
}


def diff_augment(x: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """Augment a batch ``[B, C, H, W]`` with the named augmentations, in the order given."""
    unknown = [name for name in policy if name not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(
            f"DiffAugment policy {', '.join(map(repr, unknown))} unknown; choose from {', '.join(AUGMENTATIONS)}"
        )
    for name in policy:
        for augmentation in AUGMENTATIONS[name]:
            x = augmentation(x)
    return x
