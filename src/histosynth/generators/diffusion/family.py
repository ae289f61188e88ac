"""The diffusion family behind the generator interface (:mod:`histosynth.generators`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from histosynth.config.gan import GanParams
from histosynth.config.generate import DiffusionSampling
from histosynth.errors import DataError
from histosynth.generators.diffusion import recipe
from histosynth.generators.diffusion.networks import build_unet, diffusers_version, noise_config, unet_config
from histosynth.generators.diffusion.sampling import GuidedSampler, Sampling
from histosynth.generators.diffusion.settings import resolve_settings

if TYPE_CHECKING:
    from histosynth.generators.training.selection import SampleFilter

log = logging.getLogger(__name__)

NAME = "diffusion"
ARCHS = recipe.known_archs()


def image_sizes(arch: str) -> tuple[int, ...]:
    return recipe.get_recipe(arch).image_sizes


def train(params: GanParams, train_dir: Path, holdout_dir: Path, model_dir: Path, report_dir: Path,
          sample_filter: SampleFilter | None = None) -> dict[str, Any]:
    """Train (or resume) a diffusion arch; returns the record (also in ``model_dir/record.json``)."""
    # the training code, imported here: sampling does not need it
    from histosynth.generators.training.runtime import training_runtime
    from histosynth.generators.diffusion.trainer import DiffusionTrainer
    from histosynth.generators.training.run import FamilyRun, load_training_data, run_training

    settings = resolve_settings(params)
    data = load_training_data(train_dir, holdout_dir, settings, image_sizes(settings.arch), sample_filter)
    n_classes = len(data.class_names)
    unet = unet_config(data.image_size, n_classes, settings.width, settings.layers_per_block,
                       settings.attention_max_size, settings.dropout)
    noise = noise_config(settings.timesteps, settings.schedule, settings.prediction)
    with training_runtime(settings.device, settings.precision, settings.threads) as runtime:
        family = FamilyRun(
            trainer=DiffusionTrainer(settings, runtime, n_classes, unet, noise),
            latent_dim=3 * data.image_size**2,  # the initial noise of an image, flattened
            fingerprint=settings.fingerprint(data.manifest_md5, data.class_names, data.image_size),
            losses=_losses,
            loss_columns=("denoising_loss",),
            divergence_hint="Lower gan.g_lr or change gan.seed",
            record={"arch": settings.arch, "family": NAME, "width": settings.width,
                    "generator_weights": "ema" if settings.ema > 0 else "raw", "optimizer": "adamw",
                    "unet": unet, "noise": noise, "sampling": settings.sampling.as_dict()},
            versions={"diffusers": diffusers_version()},
        )
        return run_training(settings, runtime, data, family, model_dir, report_dir)


def _losses(result) -> dict[str, float | None]:  # a trainer.DiffusionEpoch
    return {"denoising_loss": result.loss}


def resolve_sampling(record: dict[str, Any], overrides: DiffusionSampling | None) -> Sampling:
    """The record's sampling defaults with ``generate.diffusion.*`` values put over them."""
    try:
        recorded = record["sampling"]
        defaults = Sampling(recorded["sampler"], int(recorded["steps"]), float(recorded["guidance"]))
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"diffusion training record: sampling settings missing ({err}); retrain "
                        "(`dvc repro train`)") from None
    if overrides is None:
        return defaults
    return Sampling(overrides.sampler or defaults.sampler, overrides.steps or defaults.steps,
                    defaults.guidance if overrides.guidance is None else overrides.guidance)


def sampling_model(record: dict[str, Any], sampling: DiffusionSampling | None) -> tuple[nn.Module, dict[str, Any]]:
    """The generator ``G(z, y)`` of a diffusion record (weights not loaded) and the manifest's
    sampling columns (``sampler``, ``steps``, ``guidance``)."""
    chosen = resolve_sampling(record, sampling)
    return GuidedSampler(build_unet(_unet_config(record)), record["noise"], chosen, int(record["n_classes"])), \
        chosen.as_dict()


def networks(record: dict[str, Any]) -> tuple[nn.Module, nn.Module | None]:
    """(UNet, no discriminator) as trained, built on torch's current default device."""
    return build_unet(_unet_config(record)), None


def _unet_config(record: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(record["unet"])
    except (KeyError, TypeError):
        raise DataError("diffusion training record: the UNet config is missing; retrain (`dvc repro train`)") from None
