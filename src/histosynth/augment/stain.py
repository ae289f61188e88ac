"""Stain (colour) jitter in HED space (Tellez et al., Medical Image Analysis 2019), in torch.

An RGB image is split into haematoxylin, eosin and DAB optical densities by colour deconvolution
(Ruifrok and Johnston 2001) with scikit-image's ``rgb2hed`` matrix; each stain channel ``s``
becomes ``alpha * s + beta`` with ``alpha ~ U(1 - scale, 1 + scale)`` and ``beta ~ U(-shift, shift)``
drawn per image and channel; the result is mixed back to RGB. The stains are not clipped at 0 as
``rgb2hed`` clips them, so that with ``alpha = 1, beta = 0`` the round trip gives the image back.
"""

from __future__ import annotations

import math

import torch

# skimage.color.rgb_from_hed (rows: the RGB absorbance of haematoxylin, eosin, DAB); its inverse is
# skimage.color.hed_from_rgb. tests/test_stain.py checks both against scikit-image.
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
EPSILON = 1e-6  # rgb2hed's floor on intensities (log of 0)
LOG_ADJUST = math.log(EPSILON)


def rgb_to_hed(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) RGB in [0, 1] -> (..., 3) HED stain densities (scikit-image's ``rgb2hed`` before it clips at 0)."""
    return (rgb.clamp_min(EPSILON).log() / LOG_ADJUST) @ HED_FROM_RGB.to(rgb.dtype)


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_hed`, clipped to [0, 1] (scikit-image's ``hed2rgb``)."""
    return torch.exp((hed * LOG_ADJUST) @ RGB_FROM_HED.to(hed.dtype)).clamp(0.0, 1.0)


def hed_jitter(images: torch.Tensor, scale: float, shift: float, generator: torch.Generator) -> torch.Tensor:
    """(N, 3, H, W) uint8 images with their stains jittered, one draw per image and stain channel."""
    n = len(images)
    alpha = 1.0 + scale * (2.0 * torch.rand((n, 1, 3), generator=generator) - 1.0)
    beta = shift * (2.0 * torch.rand((n, 1, 3), generator=generator) - 1.0)
    # float32 pixels as (N, H*W, 3) rows: one matrix product per conversion (float32 is exact enough:
    # the round trip misses a pixel by far less than the half step that would change its uint8 value)
    rgb = images.permute(0, 2, 3, 1).reshape(n, -1, 3).to(torch.float32) / 255.0
    jittered = hed_to_rgb(rgb_to_hed(rgb) * alpha + beta)
    out = (jittered * 255.0).round().to(torch.uint8)
    return out.reshape(n, *images.shape[2:], 3).permute(0, 3, 1, 2).contiguous()
