"""``gan.*`` params resolved against the diffusion recipe: the values a diffusion run uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from histosynth.config.gan import GanParams
from histosynth.generators.diffusion.recipe import get_recipe
from histosynth.generators.diffusion.sampling import Sampling
from histosynth.generators.training.settings import RunSettings, run_fields, run_fingerprint

SAMPLING_KEYS = ("sampler", "steps", "guidance")


@dataclass(frozen=True)
class DiffusionSettings(RunSettings):
    loss: str  # recorded like a GAN's loss (training_parameters.loss in the package database)
    width: int
    layers_per_block: int
    attention_max_size: int
    dropout: float
    timesteps: int
    schedule: str
    prediction: str
    label_dropout: float
    g_lr: float  # the UNet's learning rate (``gan.g_lr``)
    betas: tuple[float, float]
    weight_decay: float
    grad_clip: float
    warmup_steps: int
    flips: bool
    # how the monitoring grids and the probe sample (and generate's defaults)
    sampler: str
    steps: int
    guidance: float

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.sampler, self.steps, self.guidance)

    def fingerprint(self, data_md5: str, class_names: tuple[str, ...], image_size: int) -> str:
        """Identity of a training run: same fingerprint = a checkpoint this run may continue."""
        # how the model samples changes no weight: a new sampling default does not retrain
        training = {k: v for k, v in self.as_dict().items() if k not in SAMPLING_KEYS}
        return run_fingerprint(training, data_md5, class_names, image_size)


def resolve_settings(params: GanParams) -> DiffusionSettings:
    recipe = get_recipe(params.arch)
    d = params.diffusion

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return DiffusionSettings(
        loss=f"mse-{pick(d.prediction, recipe.prediction)}",
        width=pick(params.width, recipe.width),
        layers_per_block=pick(d.layers_per_block, recipe.layers_per_block),
        attention_max_size=recipe.attention_max_size,
        dropout=recipe.dropout,
        timesteps=pick(d.timesteps, recipe.timesteps),
        schedule=pick(d.schedule, recipe.schedule),
        prediction=pick(d.prediction, recipe.prediction),
        label_dropout=pick(d.label_dropout, recipe.label_dropout),
        batch_size=pick(params.batch_size, recipe.batch_size),
        g_lr=pick(params.g_lr, recipe.lr),
        betas=tuple(recipe.betas),
        weight_decay=0.0,
        grad_clip=recipe.grad_clip,
        warmup_steps=recipe.warmup_steps,
        flips=recipe.flips,
        sampler=recipe.sampler,
        steps=recipe.steps,
        guidance=recipe.guidance,
        **run_fields(params),
    )
