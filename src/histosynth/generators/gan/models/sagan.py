"""The thesis' best conditional GAN (chapter 3): a self-attention GAN in the SAGAN/BigGAN family.

G: z -> dense to 4x4 -> residual up-blocks (nearest x2 upsampling, 3x3 convs whose doubled
outputs go through class-conditional BatchNorm and a GLU gate) -> BN, ReLU, 3x3 conv, tanh;
self-attention after the blocks that reach 16x16 and 32x32. The label enters G only through the
conditional BatchNorm gains and biases.
D: pre-activation residual blocks (SNGAN): one at full resolution, then average-pool down-blocks
to 4x4; self-attention on the 32x32 and 64x64 feature maps that exist at the chosen size;
ReLU, global sum pooling and a projection head. Every conv and linear layer of both networks
(and the projection embedding) is spectrally normalised.

Channels at resolution ``r`` are ``width * min(16, S / r)``: ``width`` 64 gives the thesis'
1024 channels at G's 4x4 start for 64 px, and BigGAN's 128 px plan (16, 16, 8, 4, 2, 1) x 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from histosynth.generators.gan.models.layers import ProjectionHead

IMAGE_SIZES = (32, 64, 128)
GENERATOR_ATTENTION = (16, 32)
DISCRIMINATOR_ATTENTION = (32, 64)


def _channels(image_size: int, width: int, resolution: int) -> int:
    return width * min(16, image_size // resolution)


def _sn_conv(c_in: int, c_out: int, kernel: int, bias: bool = True) -> nn.Conv2d:
    return spectral_norm(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias))


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias are looked up per class (de Vries et al. 2017)."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        # Near (1, 0) but class-dependent from the start, like BigGAN's gains from a class embedding.
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.normal_(self.bias.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019) with BigGAN's 2x2 max-pooled keys and values.

    ``scaled_dot_product_attention`` scales logits by 1/sqrt(d) (SAGAN does not), which keeps the
    softmax well-conditioned under bfloat16 autocast. ``gamma`` starts at 0, so each attention
    layer starts as the identity and is blended in as training finds it useful.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner, value = max(channels // 8, 1), max(channels // 2, 1)
        self.query = _sn_conv(channels, inner, 1, bias=False)
        self.key = _sn_conv(channels, inner, 1, bias=False)
        self.value = _sn_conv(channels, value, 1, bias=False)
        self.out = _sn_conv(value, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape

        def tokens(t: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, 1 head, H*W, C]
            return t.flatten(2).transpose(1, 2).unsqueeze(1)

        query = tokens(self.query(x))
        key = tokens(F.max_pool2d(self.key(x), 2))
        value = tokens(F.max_pool2d(self.value(x), 2))
        attended = F.scaled_dot_product_attention(query, key, value).squeeze(1)
        return x + self.gamma * self.out(attended.transpose(1, 2).reshape(b, -1, h, w))


class GeneratorBlock(nn.Module):
    """Residual up-block: nearest x2, then two (3x3 conv -> conditional BN -> GLU) stages."""

    def __init__(self, c_in: int, c_out: int, n_classes: int) -> None:
        super().__init__()
        self.conv1 = _sn_conv(c_in, 2 * c_out, 3)
        self.norm1 = ConditionalBatchNorm2d(2 * c_out, n_classes)
        self.conv2 = _sn_conv(c_out, 2 * c_out, 3)
        self.norm2 = ConditionalBatchNorm2d(2 * c_out, n_classes)
        self.skip = _sn_conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = F.glu(self.norm1(self.conv1(x), y), dim=1)
        h = F.glu(self.norm2(self.conv2(h), y), dim=1)
        return h + self.skip(x)


class DiscriminatorBlock(nn.Module):
    """Pre-activation residual block (SNGAN); the first block skips the leading ReLU."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.conv1 = _sn_conv(c_in, c_out, 3)
        self.conv2 = _sn_conv(c_out, c_out, 3)
        self.skip = _sn_conv(c_in, c_out, 1)
        self.downsample, self.first = downsample, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        skip = self.skip(x)
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


def _attention_or_identity(channels: int, resolution: int, at: tuple[int, ...]) -> nn.Module:
    return SelfAttention(channels) if resolution in at else nn.Identity()


class Generator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.n_classes, self.image_size, self.latent_dim = n_classes, image_size, latent_dim
        resolutions = [4 * 2**i for i in range((image_size // 4).bit_length())]
        channels = [_channels(image_size, width, r) for r in resolutions]
        self.start_channels = channels[0]
        self.stem = spectral_norm(nn.Linear(latent_dim, channels[0] * 16))
        self.blocks = nn.ModuleList(
            GeneratorBlock(c_in, c_out, n_classes) for c_in, c_out in zip(channels, channels[1:])
        )
        self.attention = nn.ModuleList(
            _attention_or_identity(c, r, GENERATOR_ATTENTION) for c, r in zip(channels[1:], resolutions[1:])
        )
        self.to_rgb = nn.Sequential(
            nn.BatchNorm2d(channels[-1]), nn.ReLU(), _sn_conv(channels[-1], 3, 3), nn.Tanh()
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.stem(z).view(z.shape[0], self.start_channels, 4, 4)
        for block, attention in zip(self.blocks, self.attention):
            h = attention(block(h, y))
        return self.to_rgb(h)


class Discriminator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, width: int) -> None:
        super().__init__()
        resolutions = [image_size >> i for i in range((image_size // 4).bit_length())]
        channels = [_channels(image_size, width, r) for r in resolutions]
        layers: list[nn.Module] = [
            DiscriminatorBlock(3, channels[0], downsample=False, first=True),
            _attention_or_identity(channels[0], resolutions[0], DISCRIMINATOR_ATTENTION),
        ]
        for c_in, c_out, r in zip(channels, channels[1:], resolutions[1:]):
            layers += [
                DiscriminatorBlock(c_in, c_out, downsample=True),
                _attention_or_identity(c_out, r, DISCRIMINATOR_ATTENTION),
            ]
        self.body = nn.Sequential(*layers, nn.ReLU())
        self.head = ProjectionHead(channels[-1], n_classes, spectral=True)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).sum(dim=(2, 3)), y)
