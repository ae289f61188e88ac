"""VGG-19 perceptual loss of the PathMNIST paper (ASC-GAN), from a local weights file.

The loss compares VGG-19 activations of two image batches at three depths with the paper's
weights 0.1 / 0.3 / 0.6. The paper does not name the layers; relu1_2, relu2_2 and relu3_4 (the
last ReLU of each of the first three blocks) are used. Weights are never downloaded at run time:
the user puts torchvision's ImageNet VGG-19 state dict in a file, and only its ``features.*``
tensors up to relu3_4 are read (so a trimmed file works too).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg19

from histosynth.errors import ConfigError

VGG19_WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
VGG19_WEIGHTS_URL = f"https://download.pytorch.org/models/{VGG19_WEIGHTS_FILE}"
# Index of the layer in torchvision's ``vgg19().features`` -> weight in the loss.
LAYER_WEIGHTS = {3: 0.1, 8: 0.3, 17: 0.6}  # relu1_2, relu2_2, relu3_4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg_features(weights_path: Path) -> nn.Sequential:
    """torchvision's VGG-19 trunk up to the deepest layer used, loaded from ``weights_path``."""
    if not weights_path.is_file():
        raise ConfigError(
            f"the perceptual loss needs torchvision's ImageNet VGG-19 weights ({VGG19_WEIGHTS_FILE}, "
            f"{VGG19_WEIGHTS_URL}); no file at {weights_path}: download it and put it there, "
            'or set gan.perceptual_weights to "" to switch the perceptual loss off'
        )
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a damaged or foreign file
        raise ConfigError(f"cannot read VGG-19 weights from {weights_path}: {exc}") from exc
    with torch.device("meta"):  # skip initialising the 140M parameters that are never used
        features = vgg19(weights=None).features[: max(LAYER_WEIGHTS) + 1]
    wanted = {f"features.{key}": key for key in features.state_dict()}
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise ConfigError(
            f"{weights_path} is not a VGG-19 state dict ({VGG19_WEIGHTS_FILE}): it lacks {', '.join(missing)}"
        )
    features.load_state_dict({key: state[name] for name, key in wanted.items()}, assign=True)
    return features


class PerceptualLoss(nn.Module):
    """Weighted MSE between frozen VGG-19 activations of two batches of images in [-1, 1]."""

    def __init__(self, weights_path: Path) -> None:
        super().__init__()
        self.features = _vgg_features(Path(weights_path)).eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        h = (torch.cat([generated, target]) + 1) / 2
        h = (h - self.mean) / self.std
        loss = h.new_zeros((), dtype=torch.float32)
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in LAYER_WEIGHTS:
                ours, theirs = h.float().chunk(2)
                loss = loss + LAYER_WEIGHTS[index] * F.mse_loss(ours, theirs)
        return loss
