"""Self-conditioned GAN of the PathMNIST paper (ASC-GAN), made label-conditioned.

G: ``[z, embed(y)]`` -> dense to ``16w x S/4 x S/4`` (BN + ReLU) -> AdaIN -> transposed-conv x2
(BN + ReLU) -> AdaIN -> residual block -> transposed-conv x2 -> AdaIN -> residual block ->
dropout 0.1 -> refinement 3x3 convs ``4w -> 2w -> w -> w/2`` -> 3x3 conv to RGB, tanh.
The AdaIN styles come from the latent ("self-conditioning") concatenated with a class embedding,
which is what makes the generator label-conditioned.
Critic: spectral-norm convs ``3 -> w`` (S/2) and ``w -> 2w`` (S/4), LeakyReLU 0.2, flatten,
spectral-norm linear plus a projection term for the label; no normalisation layers (WGAN-GP).

``width`` 64 gives the paper's numbers at 28 px: dense to 1024x7x7, refinement 256 -> 128 -> 64
-> 32, critic 3 -> 64 -> 128 and a 6272-wide flatten. Kernel sizes and activation slopes are not
in the paper; 4x4 stride-2 (de)convolutions and 3x3 elsewhere are used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from histosynth.generators.gan.models.layers import ProjectionHead

IMAGE_SIZES = (28, 32, 64)
DROPOUT = 0.1


class AdaIN(nn.Module):
    """Adaptive instance normalisation: per-channel scale and shift predicted from a style vector."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.style = nn.Linear(style_dim, 2 * channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gain, bias = self.style(style)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + gain) + bias


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _refine(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True))


class Generator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.n_classes, self.image_size, self.latent_dim = n_classes, image_size, latent_dim
        style_dim = 2 * latent_dim
        c0, c1, c2 = 16 * width, 8 * width, 4 * width
        self.start = image_size // 4
        self.embed = nn.Embedding(n_classes, latent_dim)
        self.dense = nn.Linear(style_dim, c0 * self.start * self.start, bias=False)
        self.dense_norm = nn.Sequential(nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        self.style0 = AdaIN(c0, style_dim)
        self.up1 = _up(c0, c1)
        self.style1 = AdaIN(c1, style_dim)
        self.res1 = ResidualBlock(c1)
        self.up2 = _up(c1, c2)
        self.style2 = AdaIN(c2, style_dim)
        self.res2 = ResidualBlock(c2)
        self.refine = nn.Sequential(
            nn.Dropout(DROPOUT),
            _refine(c2, 2 * width),
            _refine(2 * width, width),
            _refine(width, max(width // 2, 1)),
            nn.Conv2d(max(width // 2, 1), 3, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        style = torch.cat([z, self.embed(y)], dim=1)
        h = self.dense(style).view(z.shape[0], -1, self.start, self.start)
        h = self.style0(self.dense_norm(h), style)
        h = self.res1(self.style1(self.up1(h), style))
        h = self.res2(self.style2(self.up2(h), style))
        return self.refine(h)


class Discriminator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(3, width, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.head = ProjectionHead(2 * width * (image_size // 4) ** 2, n_classes, spectral=True)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x), y)
