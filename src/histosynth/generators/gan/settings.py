"""``gan.*`` params resolved against the architecture's recipe: the values training uses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histosynth.config.gan import GanParams
from histosynth.errors import ConfigError
from histosynth.generators.gan.models import get_recipe
from histosynth.generators.training.settings import RunSettings, run_fields, run_fingerprint
from histosynth.images import md5_file


@dataclass(frozen=True)
class TrainSettings(RunSettings):
    loss: str
    latent_dim: int
    width: int
    g_lr: float
    d_lr: float
    betas: tuple[float, float]
    n_critic: int
    weight_decay: float
    lr_step: tuple[int, float] | None
    diffaugment: tuple[str, ...]
    gp_weight: float
    standing_stats: bool
    perceptual_weights: str
    # projected only (None for the other archs, and then left out of the record and the fingerprint):
    # the frozen network's input size, resolved against the image size by :func:`for_images`.
    feature_size: int | None = None
    pixel_discriminator: bool = False  # projected only; left out of the record and fingerprint when false

    def as_dict(self) -> dict[str, Any]:
        fields = super().as_dict()
        if fields["feature_size"] is None:
            del fields["feature_size"]
        if not fields["pixel_discriminator"]:
            del fields["pixel_discriminator"]
        return fields

    def for_images(self, image_size: int) -> "TrainSettings":
        """The settings for training on ``image_size`` px images (resolves the projected arch's feature size)."""
        if self.arch != "projected":
            return self
        from histosynth.generators.gan.models.projected import default_feature_size

        return dataclasses.replace(self, feature_size=self.feature_size or default_feature_size(image_size))

    def fingerprint(self, data_md5: str, class_names: tuple[str, ...], image_size: int) -> str:
        """Identity of a training run: same fingerprint = a checkpoint this run may continue."""
        files = {"perceptual_weights": _file_md5(Path(self.perceptual_weights))} if self.perceptual_weights else {}
        if self.arch == "projected":  # the frozen network's weights define the run too
            from histosynth.generators.gan.models.efficientnet_lite import weights_file

            files["feature_network_md5"] = weights_file().md5
        return run_fingerprint(self.as_dict(), data_md5, class_names, image_size, files)



def resolve_settings(params: GanParams) -> TrainSettings:
    recipe = get_recipe(params.arch)

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return TrainSettings(
        loss=recipe.loss,
        latent_dim=pick(params.latent_dim, recipe.latent_dim),
        width=pick(params.width, recipe.width),
        batch_size=pick(params.batch_size, recipe.batch_size),
        g_lr=pick(params.g_lr, recipe.g_lr),
        d_lr=pick(params.d_lr, recipe.d_lr),
        betas=tuple(recipe.betas),
        n_critic=pick(params.n_critic, recipe.n_critic),
        weight_decay=recipe.weight_decay,
        lr_step=tuple(recipe.lr_step) if recipe.lr_step else None,
        diffaugment=tuple(pick(params.diffaugment, recipe.diffaugment)),
        gp_weight=params.gp_weight,
        standing_stats=params.standing_stats,
        perceptual_weights=params.perceptual_weights,
        feature_size=params.feature_size,
        pixel_discriminator=params.pixel_discriminator,
        **run_fields(params),
    )



def _file_md5(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"gan.perceptual_weights = {str(path)!r}: file not found; put the VGG-19 weights "
                          "file there or set it to \"\" (it is never downloaded)")
    return md5_file(path)
