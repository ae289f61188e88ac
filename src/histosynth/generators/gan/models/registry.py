"""Architecture registry: each arch's training recipe from the source documents, and builders."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from torch import nn

from histosynth.errors import ConfigError
from histosynth.generators.gan.models import ascgan, cwgan128, dcgan, projected, sagan

LossKind = Literal["bce", "hinge", "wgan-gp"]


@dataclass(frozen=True)
class ArchRecipe:
    """How the source documents train an architecture (``width`` is a CPU-friendly default;
    ``paper_width`` is the width that gives the documents' channel counts)."""

    name: str
    image_sizes: tuple[int, ...]
    latent_dim: int
    width: int
    paper_width: int
    loss: LossKind
    g_lr: float
    d_lr: float
    betas: tuple[float, float]
    n_critic: int
    batch_size: int
    weight_decay: float
    lr_step: tuple[int, float] | None
    diffaugment: tuple[str, ...]


_RECIPES: dict[str, ArchRecipe] = {
    # Radford et al. 2016: Adam 2e-4, beta1 0.5, non-saturating BCE.
    "dcgan": ArchRecipe(
        name="dcgan", image_sizes=dcgan.IMAGE_SIZES, latent_dim=128, width=32, paper_width=64,
        loss="bce", g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999), n_critic=1, batch_size=64,
        weight_decay=0.0, lr_step=None, diffaugment=(),
    ),
    # Thesis ch. 3: hinge loss, TTUR, Adam (0.5, 0.999), batch 128, DiffAugment colour + translation.
    "sagan": ArchRecipe(
        name="sagan", image_sizes=sagan.IMAGE_SIZES, latent_dim=128, width=16, paper_width=64,
        loss="hinge", g_lr=1e-4, d_lr=4e-4, betas=(0.5, 0.999), n_critic=1, batch_size=128,
        weight_decay=0.0, lr_step=None, diffaugment=("color", "translation"),
    ),
    # PathMNIST paper: WGAN-GP, n_critic 5, Adam 5e-4 (0.5, 0.999), StepLR 0.9 / 10 epochs, batch 64.
    "ascgan": ArchRecipe(
        name="ascgan", image_sizes=ascgan.IMAGE_SIZES, latent_dim=100, width=16, paper_width=64,
        loss="wgan-gp", g_lr=5e-4, d_lr=5e-4, betas=(0.5, 0.999), n_critic=5, batch_size=64,
        weight_decay=0.0, lr_step=(10, 0.9), diffaugment=(),
    ),
    # Breast-lesion paper: Adam lr 1e-3 (betas not given: Adam's defaults), L2 1e-6, batch 64.
    "cwgan128": ArchRecipe(
        name="cwgan128", image_sizes=cwgan128.IMAGE_SIZES, latent_dim=64, width=8, paper_width=64,
        loss="bce", g_lr=1e-3, d_lr=1e-3, betas=(0.9, 0.999), n_critic=1, batch_size=64,
        weight_decay=1e-6, lr_step=None, diffaugment=(),
    ),
    # Projected GAN (Sauer et al. 2021): hinge loss, Adam 2e-4 with betas (0, 0.99), DiffAugment colour +
    # translation + cutout before the frozen EfficientNet-Lite0; dcgan's generator. Batch 32 instead of the
    # paper's 64: the frozen network's backward pass dominates, and 3,600 steps of 32 at 28 px (input 64 px)
    # take about 26 CPU-minutes on the 2-core EPYC (batch 64: about 52).
    "projected": ArchRecipe(
        name="projected", image_sizes=projected.IMAGE_SIZES, latent_dim=128, width=32, paper_width=64,
        loss="hinge", g_lr=2e-4, d_lr=2e-4, betas=(0.0, 0.99), n_critic=1, batch_size=32,
        weight_decay=0.0, lr_step=None, diffaugment=("color", "translation", "cutout"),
    ),
}

_MODULES: dict[str, ModuleType] = {"dcgan": dcgan, "sagan": sagan, "ascgan": ascgan, "cwgan128": cwgan128,
                                   "projected": projected}


def known_archs() -> tuple[str, ...]:
    return tuple(_RECIPES)


def get_recipe(arch: str) -> ArchRecipe:
    try:
        return _RECIPES[arch]
    except KeyError:
        raise ConfigError(f"gan.arch={arch!r} is unknown; choose one of {', '.join(_RECIPES)}") from None


def check_image_size(arch: str, image_size: int) -> None:
    sizes = get_recipe(arch).image_sizes
    if image_size not in sizes:
        raise ConfigError(
            f"gan.arch={arch} supports image sizes {', '.join(map(str, sizes))}; "
            f"data.image_size is {image_size}"
        )


def _check_counts(n_classes: int, width: int) -> None:
    if n_classes < 1:
        raise ConfigError(f"a conditional GAN needs at least one class; the training data has {n_classes}")
    if width < 1:
        raise ConfigError(f"gan width must be a positive integer; got {width}")


def build_generator(arch: str, n_classes: int, image_size: int, latent_dim: int, width: int) -> nn.Module:
    """``G(z [B, latent_dim], y [B]) -> [B, 3, S, S]`` in [-1, 1]; initialised from torch's RNG."""
    check_image_size(arch, image_size)
    _check_counts(n_classes, width)
    if latent_dim < 1:
        raise ConfigError(f"gan latent_dim must be a positive integer; got {latent_dim}")
    return _MODULES[arch].Generator(n_classes, image_size, latent_dim, width)


def build_discriminator(arch: str, n_classes: int, image_size: int, width: int,
                        feature_size: int | None = None, pixel_discriminator: bool = False) -> nn.Module:
    """``D(x [B, 3, S, S], y [B]) -> [B]`` raw scores (logits for BCE; no sigmoid), or ``[B, N]`` patch
    logits (projected; the losses average over all of them). ``feature_size``: projected only, the
    size images are resized to before the frozen network (None = ``projected.default_feature_size``);
    ``pixel_discriminator``: projected only, add dcgan's pixel discriminator to the ensemble."""
    check_image_size(arch, image_size)
    _check_counts(n_classes, width)
    if arch == "projected":
        return projected.Discriminator(n_classes, image_size, width, feature_size, pixel_discriminator)
    return _MODULES[arch].Discriminator(n_classes, image_size, width)
