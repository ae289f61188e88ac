"""Conditional DCGAN baseline (Radford et al. 2016), the thesis' simplest comparison model.

G: z -> dense -> stride-2 transposed convs -> tanh, every hidden layer followed by a
class-conditional BatchNorm and ReLU: the label enters only through the BN gains and biases,
linear in a class embedding shared by all layers (BigGAN's conditional BN).
D: stride-2 convs with LeakyReLU 0.2 (BN after all but the first), projection head for the label.
The spatial plan starts at 7x7 for sizes divisible by 7 (28, 224) and at 4x4 otherwise (32, 64, 128);
channels double per halving of the resolution, capped at ``8 * width`` (``width`` 64 is the
classic DCGAN, 512 channels at 4x4 for 64 px).

Why the label does not go in as ``[z, embed(y)]`` (this model's first version): every plain
BatchNorm divides by the variance across a mixed-class batch, and on data whose classes differ
far more than their images do (brown DAB tiles vs pale stroma) that variance is mostly between
classes. Layer by layer the z-driven, within-class part of the activations fell (demo tiles,
40 epochs: 14% of the variance after the stem, 0.4% at the output) until every z gave the same
image per class, whatever the loss, D or DiffAugment; conditional BN after a
``[z, embed(y)]`` stem collapsed too. With the label applied only after normalisation each
class scales its own z-driven features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from histosynth.generators.gan.models.layers import ProjectionHead

IMAGE_SIZES = (28, 32, 64, 128, 224)
# Size of the class embedding shared by all conditional BatchNorms (BigGAN's shared embedding).
# Adam moves the gains about lr * dim per step, so a larger embedding makes them jumpier: on the
# test fixture 64 and 128 gave off-colour classes for some seeds, 32 none; the demo is alike.
CLASS_EMBEDDING_DIM = 32


def _plan(image_size: int, width: int) -> tuple[int, list[int]]:
    """Start resolution and channels per stage from the start up to half the image size."""
    start = 7 if image_size % 7 == 0 else 4
    n_up = (image_size // start).bit_length() - 1
    channels = [width * 2 ** min(n_up - 1 - i, 3) for i in range(n_up)]
    return start, channels


def _dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv weights N(0, 0.02), BN gains N(1, 0.02).

    The generator's class embedding keeps torch's N(0, 1).
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ClassConditionalBatchNorm2d(nn.Module):
    """BatchNorm with gain ``1 + W_g e`` and bias ``W_b e`` for a class embedding ``e`` (BigGAN).

    Looking gains up per class (one free parameter per class and channel) would also keep z's
    spread, but Adam moves each parameter by about the learning rate per step, so the classes
    drifted apart slowly; as linear maps of a dense N(0, 1) embedding every step moves them
    coherently and the generator is class-specific within a few hundred steps.
    """

    def __init__(self, channels: int, embedding_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(embedding_dim, channels, bias=False)
        self.bias = nn.Linear(embedding_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        gain, bias = 1 + self.gain(embedding), self.bias(embedding)
        return self.norm(x) * gain[:, :, None, None] + bias[:, :, None, None]


class Generator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.n_classes, self.image_size, self.latent_dim = n_classes, image_size, latent_dim
        start, channels = _plan(image_size, width)
        self.start = start
        self.embed = nn.Embedding(n_classes, CLASS_EMBEDDING_DIM)
        self.stem = nn.Linear(latent_dim, channels[0] * start * start, bias=False)
        self.norms = nn.ModuleList(ClassConditionalBatchNorm2d(c, CLASS_EMBEDDING_DIM) for c in channels)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)
            for c_in, c_out in zip(channels, channels[1:])
        )
        self.to_rgb = nn.Sequential(nn.ConvTranspose2d(channels[-1], 3, 4, stride=2, padding=1), nn.Tanh())
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        label = self.embed(y)
        h = self.stem(z).view(z.shape[0], -1, self.start, self.start)
        h = F.relu(self.norms[0](h, label))
        for up, norm in zip(self.ups, self.norms[1:]):
            h = F.relu(norm(up(h), label))
        return self.to_rgb(h)


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
