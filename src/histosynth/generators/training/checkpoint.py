"""Generator checkpoints in ``models/gan/`` (GANs and diffusion models): tensors only, plus a JSON record.

- ``checkpoint.pt``: everything needed to resume training (networks, EMA, optimisers, LR
  schedulers, epoch, data fingerprint, per-epoch history). Self-contained, so resuming never
  depends on the other two files.
- ``generator.pt``: the generator state dict used for sampling (the EMA weights if enabled).
- ``record.json``: how the generator was made: arch, resolved params, classes, image size...

Every file loads with ``torch.load(path, weights_only=True)`` / ``json.loads``: no pickled
objects, so loading a checkpoint cannot run code. Each file is replaced atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from histosynth.errors import DataError
from histosynth.fsutil import atomic_write_bytes, atomic_write_text
# The file names and the record's reader live on the ground floor (no torch there); re-exported here.
from histosynth.model_record import (  # noqa: F401
    CHECKPOINT_FILE, GENERATOR_FILE, RECORD_FIELDS, RECORD_FILE, RETRAIN, checkpoint_hash, read_record,
)


def _save_tensors(path: Path, obj: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_tensors(path: Path, device: str | torch.device) -> dict[str, Any]:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated, foreign or pickled-object files all land here
        raise DataError(f"{path}: not a readable histosynth checkpoint ({err}); delete it and retrain") from None


def save_training_state(model_dir: Path, state: dict[str, Any]) -> None:
    _save_tensors(Path(model_dir) / CHECKPOINT_FILE, state)


def load_training_state(model_dir: Path, device: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The resumable training state in ``model_dir``, or None when there is none."""
    path = Path(model_dir) / CHECKPOINT_FILE
    return _load_tensors(path, device) if path.is_file() else None


def save_generator(model_dir: Path, state_dict: dict[str, torch.Tensor]) -> None:
    _save_tensors(Path(model_dir) / GENERATOR_FILE, state_dict)


def write_record(model_dir: Path, record: dict[str, Any]) -> None:
    atomic_write_text(Path(model_dir) / RECORD_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")


def load_weights_into(generator: nn.Module, model_dir: Path) -> None:
    """Load ``model_dir/generator.pt`` into ``generator`` (built from the record, of any family)."""
    path = Path(model_dir) / GENERATOR_FILE
    if not path.is_file():
        raise DataError(f"{path}: generator weights missing; retrain (`dvc repro train`)")
    try:
        generator.load_state_dict(_load_tensors(path, "cpu"))
    except RuntimeError as err:
        raise DataError(f"{path}: weights do not match the architecture in {RECORD_FILE} ({err})") from None
