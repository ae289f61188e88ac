"""The breast-lesion paper's 128x128 conditional GAN (CWGAN-based, BPCI2100).

G: ``[z, embed(y)]`` -> dense to ``16w x 4 x 4`` -> 7 transposed 5x5 convs, stride 2 until the
image size is reached and stride 1 after (128 px: five stride-2 then two stride-1; 64 px: one
upsampling fewer), each hidden one followed by batch norm, LeakyReLU 0.2 and dropout; tanh.
D: the label as an extra input channel (a learned per-class S x S map), 6 convs 5x5 with stride 2
in the first five, LeakyReLU 0.2 and dropout, flatten, linear to one logit.

The paper's D ends in a sigmoid; here it returns the logit and the "bce" loss applies the sigmoid
(``softplus`` form), which is the same model and numerically safer. Channel counts and dropout
rates are not in the paper: channels double per halving (``width`` 64 gives 1024 at 4x4), dropout
0.3 in D (the usual Keras value) and 0.1 in G.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZES = (64, 128)
GENERATOR_LAYERS = 7
DISCRIMINATOR_LAYERS = 6
GENERATOR_DROPOUT = 0.1
DISCRIMINATOR_DROPOUT = 0.3


class Generator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.n_classes, self.image_size, self.latent_dim = n_classes, image_size, latent_dim
        n_up = (image_size // 4).bit_length() - 1
        strides = [2] * n_up + [1] * (GENERATOR_LAYERS - n_up)
        channels = [16 * width]
        for stride in strides[:-1]:
            channels.append(max(channels[-1] // stride, 1))
        self.start_channels = channels[0]
        self.embed = nn.Embedding(n_classes, latent_dim)
        self.dense = nn.Sequential(
            nn.Linear(2 * latent_dim, channels[0] * 16, bias=False),
            nn.BatchNorm1d(channels[0] * 16),
            nn.LeakyReLU(0.2, inplace=True),
        )
        layers: list[nn.Module] = []
        for c_in, c_out, stride in zip(channels, channels[1:], strides):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 5, stride, padding=2, output_padding=stride - 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Dropout(GENERATOR_DROPOUT),
            ]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 5, strides[-1], padding=2, output_padding=strides[-1] - 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.dense(torch.cat([z, self.embed(y)], dim=1))
        return self.body(h.view(z.shape[0], self.start_channels, 4, 4))


class Discriminator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, width: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.label_map = nn.Embedding(n_classes, image_size * image_size)
        channels = [4] + [width * min(2**i, 16) for i in range(DISCRIMINATOR_LAYERS)]
        strides = [2] * (DISCRIMINATOR_LAYERS - 1) + [1]
        layers: list[nn.Module] = []
        for c_in, c_out, stride in zip(channels, channels[1:], strides):
            layers += [
                nn.Conv2d(c_in, c_out, 5, stride, padding=2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Dropout(DISCRIMINATOR_DROPOUT),
            ]
        final = image_size >> (DISCRIMINATOR_LAYERS - 1)
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels[-1] * final * final, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        label = self.label_map(y).view(-1, 1, self.image_size, self.image_size).to(x.dtype)
        return self.body(torch.cat([x, label], dim=1)).squeeze(1)
