"""The small CNN: conv blocks down to about 8x8, global average pooling, one linear layer.

The globally pooled activations (``features``) are the domain feature space in which QA
measures FID, precision/recall/density/coverage and memorisation distances.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 images -> (N, 3, H, W) float32 in [-1, 1] (the GANs' pixel convention).

    The result is channels-last in memory, as the model is: about twice as fast on CPU.
    """
    x = torch.as_tensor(images).permute(0, 3, 1, 2)
    return x.float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def downsamplings(image_size: int) -> int:
    """How many 2x poolings bring ``image_size`` to 8 pixels or less (28 -> 2, 32 -> 2, 64 -> 3)."""
    n, size = 0, image_size
    while size > 8:
        size //= 2
        n += 1
    return max(n, 1)


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int, image_size: int, width: int = 16) -> None:
        super().__init__()
        self.n_classes, self.image_size, self.width = n_classes, image_size, width
        layers = _conv_bn_relu(3, width)
        channels = width
        for i in range(downsamplings(image_size)):
            out = min(width * 2 ** (i + 1), 4 * width)
            layers += [nn.MaxPool2d(2), *_conv_bn_relu(channels, out), *_conv_bn_relu(out, out)]
            channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.feature_dim = channels
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels, n_classes))
        self.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def config(self) -> dict[str, int]:
        """What :func:`histosynth.classifier.checkpoint.load_classifier` needs to rebuild it."""
        return {"n_classes": self.n_classes, "image_size": self.image_size, "width": self.width}
