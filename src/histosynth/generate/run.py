"""The ``generate`` stage: N images per class from the trained generator in ``models/gan/``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from histosynth.config.generate import GenerateParams
from histosynth.errors import ConfigError, DataError
from histosynth.fsutil import atomic_output_dir
from histosynth.gan.checkpoint import GENERATOR_FILE, checkpoint_hash, load_generator
from histosynth.generate.sampler import BlockSampler, resolve_device, resolve_precision
from histosynth.generate.writer import write_synthetic_set

log = logging.getLogger(__name__)


def generate(params: GenerateParams, model_dir: Path, out_dir: Path) -> pd.DataFrame:
    """Write ``params.n_per_class`` images per class (PNG + MD5SUMS + manifest) to ``out_dir``.

    ``out_dir`` is replaced atomically: an interrupted run leaves the previous output intact.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    sampler, record = _load_sampler(model_dir, params.seed, device, precision)
    checkpoint = checkpoint_hash(model_dir)
    log.info("generating %d images per class for %d classes with %s generator %s (seed %d, %s, %s)",
             params.n_per_class, len(record["class_names"]), record["arch"], checkpoint, params.seed, device,
             precision)
    with atomic_output_dir(out_dir) as tmp:
        manifest = write_synthetic_set(sampler, record["class_names"], params.n_per_class, tmp,
                                       checkpoint_md5=checkpoint, arch=record["arch"], lookahead=params.batch_size)
    log.info("wrote %d images with MD5SUMS and a manifest to %s", len(manifest), out_dir)
    return manifest


def regenerate(model_dir: Path, seed: int, label: int, index: int, device: str = "cpu",
               precision: str = "fp32") -> np.ndarray:
    """Image ``index`` of class ``label`` as ``generate`` wrote it with ``seed``: (S, S, 3) uint8.

    Byte-identical to the stored PNG's pixels on the kind of device and at the precision that
    generated it (the manifest's ``device`` and ``precision`` columns) with the same library
    versions; guaranteed on CPU.
    """
    where = resolve_device(device)
    sampler, record = _load_sampler(Path(model_dir), seed, where, resolve_precision(precision, where))
    n_classes = len(record["class_names"])
    if not 0 <= label < n_classes:
        raise ConfigError(f"class label {label} is out of range: the generator in {model_dir} has classes "
                          f"0..{n_classes - 1}")
    if index < 0:
        raise ConfigError(f"image index must be 0 or more, got {index}")
    return sampler.image(label, index)


def _load_sampler(model_dir: Path, seed: int, device: torch.device,
                  precision: str) -> tuple[BlockSampler, dict[str, Any]]:
    if not (model_dir / GENERATOR_FILE).is_file():
        problem = "does not exist" if not model_dir.is_dir() else f"holds no {GENERATOR_FILE}"
        raise DataError(f"{model_dir}: {problem}; train a generator first (`dvc repro train` or `histosynth train`)")
    generator, record = load_generator(model_dir, device)
    return BlockSampler(generator, record["latent_dim"], seed, device, precision), record
