"""Which family each ``gan.arch`` belongs to, and the calls that dispatch to it.

Families are imported when first needed: a GAN run never imports diffusers.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from histosynth import paths
from histosynth.config.gan import DIFFUSION_ARCHS, GAN_ARCHS, GanParams
from histosynth.config.generate import DiffusionSampling
from histosynth.errors import ConfigError, DataError
from histosynth.generators.family import GeneratorFamily
from histosynth.generators.training import checkpoint
from histosynth.output_policy import check_outputs, mark_as_output

if TYPE_CHECKING:
    from histosynth.generators.training.selection import SampleFilter

_MODULES = {"gan": "histosynth.generators.gan.family", "diffusion": "histosynth.generators.diffusion.family"}
_FAMILY_OF = {**{arch: "gan" for arch in GAN_ARCHS}, **{arch: "diffusion" for arch in DIFFUSION_ARCHS}}


def known_archs() -> tuple[str, ...]:
    return tuple(_FAMILY_OF)


def family_name(arch: str) -> str:
    try:
        return _FAMILY_OF[arch]
    except KeyError:
        raise ConfigError(f"gan.arch={arch!r} is unknown; choose one of {', '.join(_FAMILY_OF)}") from None


def family(arch: str) -> GeneratorFamily:
    return importlib.import_module(_MODULES[family_name(arch)])  # type: ignore[return-value]


def default_train_dir(params: GanParams) -> Path:
    """The pipeline's training images for ``gan.train_on``: the augmented set or the real one."""
    return paths.AUGMENTED_DIR if params.train_on == "augmented" else paths.REAL_DIR


def train(params: GanParams, train_dir: Path, holdout_dir: Path, model_dir: Path, report_dir: Path,
          sample_filter: SampleFilter | None = None) -> dict[str, Any]:
    """Train (or resume) the generator ``gan.arch`` names; returns its record. ``sample_filter``: curation's
    tests, which ``gan.select.by: curated_colour`` scores checkpoints through."""
    check_outputs({"model folder": model_dir, "report folder": report_dir},
                  {"training images": train_dir, "real images": holdout_dir})
    mark_as_output(model_dir)
    mark_as_output(report_dir)
    return family(params.arch).train(params, train_dir, holdout_dir, model_dir, report_dir, sample_filter)


def load_sampling_model(model_dir: Path, device: str | torch.device = "cpu",
                        sampling: DiffusionSampling | None = None) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The trained generator ``G(z, y)`` in ``model_dir`` (eval mode, on ``device``), its record,
    and the manifest columns that say how it samples (diffusion: sampler, steps, guidance)."""
    model_dir = Path(model_dir)
    record = checkpoint.read_record(model_dir)
    arch = record.get("arch")
    if arch not in _FAMILY_OF:
        raise DataError(f"{model_dir / checkpoint.RECORD_FILE}: arch {arch!r} is not one this version knows "
                        f"({', '.join(_FAMILY_OF)}); retrain (`dvc repro train`)")
    generator, columns = family(arch).sampling_model(record, sampling)
    checkpoint.load_weights_into(generator, model_dir)
    return generator.to(device).eval(), record, columns


def networks(record: dict[str, Any]) -> tuple[nn.Module, nn.Module | None]:
    """(generator, discriminator or None) of a training record, built on torch's default device."""
    arch = record.get("arch")
    if arch not in _FAMILY_OF:
        raise DataError(f"training record: arch {arch!r} is not one this version knows ({', '.join(_FAMILY_OF)}); "
                        "retrain (`dvc repro train`)")
    return family(arch).networks(record)
