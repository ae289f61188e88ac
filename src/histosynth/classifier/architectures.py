"""The classifier architectures a recipe can train: the small CNN and a ResNet-18 for small tiles."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from histosynth.classifier.model import SmallCNN
from histosynth.config.classifier import ARCHS, Arch


def small_input_resnet18(n_classes: int) -> nn.Module:
    """torchvision's ResNet-18, randomly initialised (nothing is downloaded), for 28-64 px tiles.

    The ImageNet stem (7x7 stride-2 convolution, then max pooling) would shrink a 32 px tile to
    8 px before the first residual block; a 3x3 stride-1 stem without pooling keeps the
    resolution, as the usual CIFAR and MedMNIST ResNets do.
    """
    model = torchvision.models.resnet18(weights=None, num_classes=n_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model.to(memory_format=torch.channels_last)


def build_classifier(arch: Arch, n_classes: int, image_size: int, width: int) -> nn.Module:
    """A freshly initialised classifier (logits out); ``width`` applies to the small CNN only."""
    if arch == "small_cnn":
        return SmallCNN(n_classes, image_size, width)
    if arch == "resnet18":
        return small_input_resnet18(n_classes)
    raise ValueError(f"unknown classifier architecture {arch!r}; known: {', '.join(ARCHS)}")
