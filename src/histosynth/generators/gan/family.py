"""The GAN family (``histosynth.generators.gan``) behind the generator interface (:mod:`histosynth.generators`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from histosynth.config.gan import GanParams
from histosynth.config.generate import DiffusionSampling
from histosynth.errors import DataError
from histosynth.generators.gan.models import build_discriminator, build_generator, get_recipe, known_archs

if TYPE_CHECKING:
    from histosynth.generators.training.selection import SampleFilter

log = logging.getLogger(__name__)

NAME = "gan"
ARCHS = known_archs()
__all__ = ["NAME", "ARCHS", "image_sizes", "train", "sampling_model", "networks"]


def train(params: GanParams, train_dir: Path, holdout_dir: Path, model_dir: Path, report_dir: Path,
          sample_filter: SampleFilter | None = None) -> dict[str, Any]:
    from histosynth.generators.gan.train import train as train_gan  # the training code: not needed to sample

    return train_gan(params, train_dir, holdout_dir, model_dir, report_dir, sample_filter)


def image_sizes(arch: str) -> tuple[int, ...]:
    return get_recipe(arch).image_sizes


def _shape(record: dict[str, Any]) -> tuple[str, int, int, int, int]:
    try:
        width = record.get("width", record.get("params", {}).get("width"))
        return (record["arch"], int(record["n_classes"]), int(record["image_size"]), int(record["latent_dim"]),
                int(width))
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"GAN training record: arch, n_classes, image_size, latent_dim or width missing ({err}); "
                        "retrain the GAN (`dvc repro train`)") from None


def sampling_model(record: dict[str, Any], sampling: DiffusionSampling | None) -> tuple[nn.Module, dict[str, Any]]:
    if sampling is not None and any(value is not None for value in sampling.model_dump().values()):
        log.warning("generate.diffusion.* is set but the checkpoint is a GAN (%s): ignored", record.get("arch"))
    arch, n_classes, image_size, latent_dim, width = _shape(record)
    return build_generator(arch, n_classes=n_classes, image_size=image_size, latent_dim=latent_dim, width=width), {}


def networks(record: dict[str, Any]) -> tuple[nn.Module, nn.Module | None]:
    arch, n_classes, image_size, latent_dim, width = _shape(record)
    feature_network = record.get("feature_network", {})  # projected only
    return (build_generator(arch, n_classes=n_classes, image_size=image_size, latent_dim=latent_dim, width=width),
            build_discriminator(arch, n_classes=n_classes, image_size=image_size, width=width,
                                feature_size=feature_network.get("input_size"),
                                pixel_discriminator=feature_network.get("pixel_discriminator", False)))
