"""Train the label-conditioned GAN: the ``train`` stage and ``histosynth train`` for GAN archs.

The run itself (resume, checkpoints, NaN stop, monitoring, record) is the one every generator
family shares (:mod:`histosynth.generators.training.run`); this module contributes the GAN's
trainer, its losses and its part of the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from histosynth.config.gan import GanParams
from histosynth.generators.gan.loop import EpochResult, GanTrainer
from histosynth.generators.gan.models import get_recipe
from histosynth.generators.gan.settings import TrainSettings, resolve_settings
from histosynth.generators.training.run import FamilyRun, load_training_data, run_training
from histosynth.generators.training.runtime import training_runtime
from histosynth.generators.training.selection import SampleFilter


def train(params: GanParams, train_dir: Path, holdout_dir: Path, model_dir: Path, report_dir: Path,
          sample_filter: SampleFilter | None = None) -> dict[str, Any]:
    """Train (or resume) and return the final record (also written to ``model_dir/record.json``)."""
    settings = resolve_settings(params)
    data = load_training_data(train_dir, holdout_dir, settings, get_recipe(settings.arch).image_sizes, sample_filter)
    settings = settings.for_images(data.image_size)
    fingerprint = settings.fingerprint(data.manifest_md5, data.class_names, data.image_size)
    with training_runtime(settings.device, settings.precision, settings.threads) as runtime:
        trainer = GanTrainer(settings, runtime, len(data.class_names), data.image_size)
        family = FamilyRun(
            trainer=trainer,
            latent_dim=settings.latent_dim,
            fingerprint=fingerprint,
            losses=_losses_of(settings),
            loss_columns=_loss_columns(settings),
            divergence_hint="Lower gan.g_lr / gan.d_lr or change gan.seed",
            record={"arch": settings.arch, "family": "gan", "width": settings.width,
                    "generator_weights": "ema" if settings.ema > 0 else "raw", "optimizer": "adam",
                    **_feature_network_record(settings)},
            versions=_feature_network_versions(settings),
        )
        return run_training(settings, runtime, data, family, model_dir, report_dir)


def _feature_network_record(settings: TrainSettings) -> dict[str, Any]:
    """projected: which frozen network judged the images, and the MD5 of its weights file."""
    if settings.arch != "projected":
        return {}
    from histosynth.generators.gan.models import efficientnet_lite, projected

    weights = efficientnet_lite.weights_file()
    return {"feature_network": {
        "name": efficientnet_lite.NAME, "package": efficientnet_lite.PACKAGE,
        "package_version": weights.package_version, "weights_file": weights.path.name, "weights_md5": weights.md5,
        "input_size": settings.feature_size, "stages": list(projected.FEATURE_STAGES),
        "normalisation": "imagenet", "pixel_discriminator": settings.pixel_discriminator}}


def _feature_network_versions(settings: TrainSettings) -> dict[str, str]:
    if settings.arch != "projected":
        return {}
    from histosynth.generators.gan.models import efficientnet_lite

    return {efficientnet_lite.PACKAGE: efficientnet_lite.weights_file().package_version}


def _loss_columns(settings: TrainSettings) -> tuple[str, ...]:
    return ("d_loss", "g_loss") + (("gradient_penalty",) if settings.loss == "wgan-gp" else ())


def _losses_of(settings: TrainSettings):
    columns = _loss_columns(settings)

    def losses(result: EpochResult) -> dict[str, float | None]:
        values = {"d_loss": result.d_loss, "g_loss": result.g_loss, "gradient_penalty": result.gradient_penalty}
        return {name: values[name] for name in columns}

    return losses
