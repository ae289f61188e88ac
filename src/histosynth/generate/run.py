"""The ``generate`` stage: N images per class from the trained generator in ``models/gan/``: samples
from noise, or (``generate.mode: edit``, diffusion models) edits of the real train images.

One process, or several under ``torchrun`` (:mod:`histosynth.generate.shards`) with the same bytes.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from histosynth.config.generate import DiffusionSampling, EditParams, GenerateParams
from histosynth.errors import ConfigError, DataError
from histosynth.fsutil import atomic_output_dir, replace_dir
from histosynth.generate.colour import ColourMatch
from histosynth.generate.edits import EditSampler, EditSources
from histosynth.generate.sampler import BlockSampler, resolve_device, resolve_precision
from histosynth.generate.shards import Shard, process_shard
from histosynth.generate.writer import write_synthetic_set
from histosynth.generators import family_name, known_archs, load_sampling_model
from histosynth.model_record import GENERATOR_FILE, checkpoint_hash, read_record
from histosynth.output_policy import check_outputs, mark_as_output

log = logging.getLogger(__name__)


def generate(params: GenerateParams, model_dir: Path, out_dir: Path, real_dir: Path | None = None) -> pd.DataFrame | None:
    """Write ``params.n_per_class`` images per class (PNG + MD5SUMS + manifest) to ``out_dir``.

    ``generate.mode: edit`` edits the train images of ``real_dir`` (a folder written by ingest).
    ``out_dir`` is replaced atomically: an interrupted run leaves the previous output intact.
    Under torchrun every process writes its share; the main one returns the manifest, the
    others None.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    needs_real = params.mode == "edit" or params.colour_match != "none"
    check_outputs({"output folder": out_dir}, {"model folder": model_dir, "real images": real_dir if needs_real else None})
    edit = _edit_request(params, model_dir, real_dir)
    colour = _colour_request(params.colour_match, real_dir)
    with process_shard() as shard:
        device = resolve_device(params.device)
        precision = resolve_precision(params.precision, device)
        sampler, record, sampling = _load_sampler(model_dir, params.seed, device, precision, params.diffusion, edit,
                                                  colour)
        checkpoint = checkpoint_hash(model_dir)
        class_names = record["class_names"]
        written_by = dict(checkpoint_md5=checkpoint, arch=record["arch"], family=family_name(record["arch"]),
                          sampling=sampling, lookahead=params.batch_size)
        if shard.is_main:
            what = (f"edits (strength {edit[0].strength}) of the {real_dir} train images" if edit else
                    f"images (colours matched to the {real_dir} train images: {params.colour_match})" if colour
                    else "images")
            log.info("generating %d %s per class for %d classes with %s generator %s (seed %d, %s, %s%s%s)",
                     params.n_per_class, what, len(class_names), record["arch"], checkpoint, params.seed, device,
                     precision,
                     "".join(f", {key} {value}" for key, value in sampling.items()),
                     f", {shard.world_size} processes" if shard.distributed else "")
        if shard.distributed:
            manifest = _generate_sharded(shard, out_dir, lambda tmp: write_synthetic_set(
                sampler, class_names, params.n_per_class, tmp, shard=shard, **written_by))
        else:
            _remove_stale_shards(out_dir)
            with atomic_output_dir(out_dir) as tmp:
                manifest = write_synthetic_set(sampler, class_names, params.n_per_class, tmp, **written_by)
        if manifest is not None:
            log.info("wrote %d images with MD5SUMS and a manifest to %s", len(manifest), out_dir)
        return manifest


def _shard_dir(out_dir: Path) -> Path:
    """The folder every process of a torchrun group writes into (one name: they share it)."""
    return out_dir.parent / f".{out_dir.name}.tmp-shards"


def _remove_stale_shards(out_dir: Path) -> None:
    """What a torchrun group that was stopped (a process died) left behind."""
    if _shard_dir(out_dir).exists():
        log.info("removing %s, left by an interrupted multi-process run", _shard_dir(out_dir))
        shutil.rmtree(_shard_dir(out_dir))


def _generate_sharded(shard: Shard, out_dir: Path,
                      write: Callable[[Path], pd.DataFrame | None]) -> pd.DataFrame | None:
    """As one process, but every process writes its share into one shared temporary folder; the
    main process swaps it into place once every image and the index are written. When a process
    dies, torchrun stops them all and ``out_dir`` is left as it was (the temporary folder is
    removed by the next run)."""
    tmp = _shard_dir(out_dir)
    if shard.is_main:
        _remove_stale_shards(out_dir)
        tmp.mkdir(parents=True)
        mark_as_output(tmp)
    try:
        manifest = write(tmp)
        if shard.is_main:
            replace_dir(tmp, out_dir)
    except BaseException:
        if shard.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    shard.barrier()  # every process returns once the output is in place
    return manifest


def regenerate(model_dir: Path, seed: int, label: int, index: int, device: str = "cpu", precision: str = "fp32",
               sampling: DiffusionSampling | None = None, edit: EditParams | None = None,
               real_dir: Path | None = None, colour_match: str = "none") -> np.ndarray:
    """Image ``index`` of class ``label`` as ``generate`` wrote it with ``seed``: (S, S, 3) uint8.

    Byte-identical to the stored PNG's pixels on the kind of device and at the precision that
    generated it (the manifest's ``device`` and ``precision`` columns) with the same library
    versions; guaranteed on CPU. A diffusion image also needs the manifest's ``sampler``,
    ``steps`` and ``guidance`` when they differ from the model's defaults (``sampling``); an edit
    its ``edit_strength`` (``edit``) and the real folder it edited (``real_dir``); a sample made with
    ``generate.colour_match`` that setting and the real folder (``real_dir``).
    """
    where = resolve_device(device)
    request = None
    if edit is not None:
        request = _edit_request(GenerateParams(mode="edit", edit=edit), Path(model_dir), real_dir)
    sampler, record, _ = _load_sampler(Path(model_dir), seed, where, resolve_precision(precision, where), sampling,
                                       request, _colour_request(colour_match, real_dir))
    n_classes = len(record["class_names"])
    if not 0 <= label < n_classes:
        raise ConfigError(f"class label {label} is out of range: the generator in {model_dir} has classes "
                          f"0..{n_classes - 1}")
    if index < 0:
        raise ConfigError(f"image index must be 0 or more, got {index}")
    return sampler.image(label, index)


def _edit_request(params: GenerateParams, model_dir: Path, real_dir: Path | None) -> tuple[EditParams, Path] | None:
    """``(generate.edit, real_dir)`` in edit mode, checked before any work: the checkpoint must be a
    diffusion model and the real folder given; None in sample mode."""
    if params.mode != "edit":
        return None
    _require_generator(model_dir)
    record = read_record(model_dir)
    if record.get("arch") in known_archs() and family_name(record["arch"]) != "diffusion":  # unknown: DataError later
        raise ConfigError(f"generate.mode is 'edit' but {model_dir} holds a {record.get('arch')} GAN, which cannot "
                          "edit images; train the diffusion model (gan.arch: ddpm) or set generate.mode: sample")
    if real_dir is None:
        raise ConfigError("generate.mode is 'edit': pass the real image folder whose train images it edits "
                          "(real_dir, the ingest stage's data/real)")
    return params.edit, Path(real_dir)


def _colour_request(colour_match: str, real_dir: Path | None) -> tuple[str, Path] | None:
    """``(generate.colour_match, real_dir)`` when samples take real images' colours; None otherwise."""
    if colour_match == "none":
        return None
    if real_dir is None:
        raise ConfigError(f"generate.colour_match is {colour_match!r}: pass the real image folder whose train images "
                          "give the samples their colours (real_dir, the ingest stage's data/real)")
    return colour_match, Path(real_dir)


def _require_generator(model_dir: Path) -> None:
    if not (model_dir / GENERATOR_FILE).is_file():
        problem = "does not exist" if not model_dir.is_dir() else f"holds no {GENERATOR_FILE}"
        raise DataError(f"{model_dir}: {problem}; train a generator first (`dvc repro train` or `histosynth train`)")


def _load_sampler(model_dir: Path, seed: int, device: torch.device, precision: str,
                  sampling: DiffusionSampling | None, edit: tuple[EditParams, Path] | None = None,
                  colour: tuple[str, Path] | None = None) -> tuple[BlockSampler, dict[str, Any], dict[str, Any]]:
    _require_generator(model_dir)
    generator, record, columns = load_sampling_model(model_dir, device, sampling)
    if edit is None:
        recolour = None
        if colour is not None:
            how, real_dir = colour
            recolour = ColourMatch(EditSources.load(real_dir, record["class_names"], int(record["image_size"])), how)
        return BlockSampler(generator, record["latent_dim"], seed, device, precision, recolour), record, columns
    params, real_dir = edit
    sources = EditSources.load(real_dir, record["class_names"], int(record["image_size"]))
    return EditSampler(generator, record["latent_dim"], seed, device, precision, sources, params.strength,
                       params.keep_colour), record, \
        columns
