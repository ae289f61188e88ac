"""Projected GAN (Sauer et al. 2021): a discriminator that judges images through a frozen
ImageNet network, so the generator learns from features it could never learn from a few hundred
images (also Kumari et al. 2022, "vision-aided GAN").

D: images (DiffAugmented by the trainer, as every GAN input here) are resized to
``feature_size`` and normalised with ImageNet's mean / std, then the frozen EfficientNet-Lite0
(:mod:`histosynth.generators.gan.models.efficientnet_lite`) gives features after four of its stages. As in
Projected GAN, fixed random 1x1 convolutions mix the channels of each scale (CCM) and, top-down,
the deeper scales into the shallower ones (CSM); neither is trained. A small trainable head per
scale (spectral-norm stride-2 convs, BatchNorm, LeakyReLU 0.2, down to 4x4) ends in a
class-projection map: each of its positions scores ``<h, embed(y)> / sqrt(dim)``. Scores are
patch logits ``[B, N]``: every scale contributes a 4x4 map (smaller maps are repeated up to 4x4,
so every scale weighs the same in the loss's mean).

The frozen network is not a submodule: it is not in ``parameters()`` (the optimiser and
``requires_grad_`` toggles never see it), not in ``state_dict()`` (checkpoints stay small; its
weights are identified by MD5 in the training record), and ``train()`` leaves it in eval mode.
``to()``/``cuda()`` move it along. Gradients flow through it to the generator's images.

With ``pixel_discriminator`` dcgan's discriminator also judges the (augmented) pixels, its score
weighing as much as the four feature scales together: the ensemble of vision-aided GAN (Kumari et
al. 2022), which keeps the original discriminator beside the pretrained one. ImageNet features
are partly blind to what a pixel discriminator sees at once, such as stain colour.

G: dcgan's conditional-BatchNorm generator (:mod:`histosynth.generators.gan.models.dcgan`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from histosynth.generators.gan.models import dcgan
from histosynth.generators.gan.models.efficientnet_lite import IMAGENET_MEAN, IMAGENET_STD, STAGES, load_pretrained

IMAGE_SIZES = dcgan.IMAGE_SIZES
Generator = dcgan.Generator
# Lite0 stages whose outputs are judged (1-based): strides 4, 8, 16 and 32, Projected GAN's choice
# for its EfficientNet-Lite feature networks.
FEATURE_STAGES = (2, 3, 5, 7)
HEAD_SIZE = 4  # every head ends in a map of at most this size
MAX_HEAD_CHANNELS = 256
CMAP_DIM = 64  # size of the class embedding each head's map is projected on
MIN_FEATURE_SIZE = 64


def default_feature_size(image_size: int) -> int:
    """The size images are resized to before the frozen network: twice theirs, at least 64."""
    return max(MIN_FEATURE_SIZE, 2 * image_size)


def _fixed_conv_weight(c_out: int, c_in: int) -> torch.Tensor:
    """A 1x1 convolution's weight drawn like ``nn.Conv2d``'s default (Kaiming uniform), from torch's RNG."""
    weight = torch.empty(c_out, c_in, 1, 1)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return weight


class RandomProjection(nn.Module):
    """Projected GAN's fixed random cross-channel (CCM) and cross-scale (CSM) mixing.

    ``ccm[i]`` maps scale i's features to ``channels[i]``; top-down, the mixed deeper scale is
    mapped to scale i's channels (``csm[i]``), upsampled to its size and added. The weights are
    buffers: random, never trained, saved with the discriminator (so a resumed run is exact).
    """

    def __init__(self, in_channels: tuple[int, ...], channels: tuple[int, ...]) -> None:
        super().__init__()
        for i, (c_in, c_out) in enumerate(zip(in_channels, channels)):
            self.register_buffer(f"ccm{i}", _fixed_conv_weight(c_out, c_in))
        for i in range(len(channels) - 1):
            self.register_buffer(f"csm{i}", _fixed_conv_weight(channels[i], channels[i + 1]))
        self.n = len(channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [F.conv2d(f, getattr(self, f"ccm{i}")) for i, f in enumerate(features)]
        for i in range(self.n - 2, -1, -1):
            deeper = F.conv2d(mixed[i + 1], getattr(self, f"csm{i}"))
            mixed[i] = mixed[i] + F.interpolate(deeper, size=mixed[i].shape[-2:], mode="bilinear", align_corners=False)
        return mixed


class ScaleHead(nn.Module):
    """One scale's trainable discriminator: stride-2 blocks down to ``HEAD_SIZE``, then a class projection."""

    def __init__(self, channels: int, size: int, n_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        while size > HEAD_SIZE:
            out = min(2 * channels, MAX_HEAD_CHANNELS)
            layers += [spectral_norm(nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=False)),
                       nn.BatchNorm2d(out), nn.LeakyReLU(0.2, inplace=True)]
            channels, size = out, (size + 1) // 2
        self.body = nn.Sequential(*layers)
        self.to_cmap = spectral_norm(nn.Conv2d(channels, CMAP_DIM, 3, padding=1))
        self.embed = nn.Embedding(n_classes, CMAP_DIM)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cmap = self.to_cmap(self.body(h))
        scores = (cmap * self.embed(y)[:, :, None, None]).sum(dim=1, keepdim=True) / math.sqrt(CMAP_DIM)
        if scores.shape[-1] < HEAD_SIZE:  # equal weight per scale in the loss's mean
            scores = F.interpolate(scores, size=(HEAD_SIZE, HEAD_SIZE), mode="nearest")
        return scores.flatten(1)


def _feature_map_size(size: int, stage: int) -> int:
    """Side of Lite0's feature map after ``stage`` (1-based) for ``size`` px input (SAME padding: ceil)."""
    size = math.ceil(size / 2)  # the stem
    for _, _, stride, *_ in STAGES[:stage]:
        size = math.ceil(size / stride)
    return size


class Discriminator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, width: int, feature_size: int | None = None,
                 pixel_discriminator: bool = False) -> None:
        super().__init__()
        self.image_size = image_size
        self.feature_size = feature_size or default_feature_size(image_size)
        # Not a submodule (see the module docstring): kept out of parameters(), state_dict() and train().
        self.__dict__["features"] = load_pretrained()
        in_channels = tuple(STAGES[s - 1][-1] for s in FEATURE_STAGES)
        channels = tuple(width * 2 ** i for i in range(len(FEATURE_STAGES)))
        self.projection = RandomProjection(in_channels, channels)
        self.heads = nn.ModuleList(
            ScaleHead(c, _feature_map_size(self.feature_size, s), n_classes) for c, s in zip(channels, FEATURE_STAGES))
        # vision-aided ensemble: dcgan's discriminator on the pixels themselves (built after the heads,
        # so the heads' initial weights do not depend on whether it is there)
        self.pixel = dcgan.Discriminator(n_classes, image_size, width) if pixel_discriminator else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        self.features._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def imagenet_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] at ``image_size`` -> the frozen network's input: resized, ImageNet-normalised."""
        if x.shape[-1] != self.feature_size:
            x = F.interpolate(x, size=(self.feature_size, self.feature_size), mode="bilinear", align_corners=False)
        return ((x + 1) / 2 - self.mean) / self.std

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Patch logits ``[B, 4 * 16]`` (four scales, a 4x4 map each); with the pixel discriminator its
        score follows, repeated 64 times, so that it weighs as much as the four scales in the loss's mean."""
        features = self.features.stage_outputs(self.imagenet_input(x), FEATURE_STAGES)
        mixed = self.projection(features)
        scores = torch.cat([head(h, y) for head, h in zip(self.heads, mixed)], dim=1)
        if self.pixel is None:
            return scores
        return torch.cat([scores, self.pixel(x, y)[:, None].expand_as(scores)], dim=1)
