"""What a generator family provides: the interface that train, generate, regenerate, the package
database and the report use for GAN archs and diffusion archs alike.

A family is a module with these names (see :mod:`histosynth.generators.gan.family` and
:mod:`histosynth.generators.diffusion.family`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from histosynth.config.gan import GanParams
from histosynth.config.generate import DiffusionSampling

if TYPE_CHECKING:
    from histosynth.generators.training.selection import SampleFilter


class GeneratorFamily(Protocol):
    NAME: str  # "gan" | "diffusion": record.json's "family", the manifest's origin prefix
    ARCHS: tuple[str, ...]  # the gan.arch names of the family

    @staticmethod
    def image_sizes(arch: str) -> tuple[int, ...]: ...

    @staticmethod
    def train(params: GanParams, train_dir: Path, holdout_dir: Path, model_dir: Path, report_dir: Path,
              sample_filter: SampleFilter | None = None) -> dict[str, Any]:
        """Train (or resume) into ``model_dir`` (checkpoint.pt, generator.pt, record.json) and
        ``report_dir`` (grids, losses.tsv, probe.tsv, metrics.json); return the record."""

    @staticmethod
    def sampling_model(record: dict[str, Any], sampling: DiffusionSampling | None) -> tuple[nn.Module, dict[str, Any]]:
        """The module whose state dict is ``generator.pt`` (weights not loaded yet): ``G(z [B,
        record latent_dim], y [B]) -> [B, 3, S, S]`` in [-1, 1]; and the columns it adds to the
        generate manifest (how it samples), empty for a GAN."""

    @staticmethod
    def networks(record: dict[str, Any]) -> tuple[nn.Module, nn.Module | None]:
        """(generator, discriminator or None) as trained, built on torch's current default device."""
