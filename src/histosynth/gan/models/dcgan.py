"""Conditional DCGAN baseline (Radford et al. 2016), the thesis' simplest comparison model.

G: ``[z, embed(y)]`` -> dense -> stride-2 transposed convs (BN + ReLU) -> tanh.
D: stride-2 convs with LeakyReLU 0.2 (BN after the first), projection head for the label.
The spatial plan starts at 7x7 for sizes divisible by 7 (28) and at 4x4 otherwise (32, 64, 128);
channels double per halving of the resolution, capped at ``8 * width`` (``width`` 64 is the
classic DCGAN, 512 channels at 4x4 for 64 px).
"""

from __future__ import annotations

import torch
from torch import nn

from histosynth.gan.models.layers import ProjectionHead

IMAGE_SIZES = (28, 32, 64, 128)


def _plan(image_size: int, width: int) -> tuple[int, list[int]]:
    """Start resolution and channels per stage from the start up to half the image size."""
    start = 7 if image_size % 7 == 0 else 4
    n_up = (image_size // start).bit_length() - 1
    channels = [width * 2 ** min(n_up - 1 - i, 3) for i in range(n_up)]
    return start, channels


def _dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv weights N(0, 0.02), BN gains N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.n_classes, self.image_size, self.latent_dim = n_classes, image_size, latent_dim
        start, channels = _plan(image_size, width)
        self.start = start
        self.embed = nn.Embedding(n_classes, latent_dim)
        self.stem = nn.Linear(2 * latent_dim, channels[0] * start * start, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, stride=2, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.stem(torch.cat([z, self.embed(y)], dim=1))
        return self.body(h.view(h.shape[0], -1, self.start, self.start))


class Discriminator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, width: int) -> None:
        super().__init__()
        start, channels = _plan(image_size, width)
        channels = channels[::-1]
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [
                nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.head = ProjectionHead(channels[-1] * start * start, n_classes)
        self.apply(_dcgan_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x), y)
