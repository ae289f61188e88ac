"""The files of a trained generator's folder (``models/gan/``) that stages outside the generator
families read: the training record (``record.json``: arch, classes, image size...) and the
identity of the sampling weights (``generator.pt``'s MD5).

Plain files and JSON: reading them needs no torch. (The families write them; histosynth.generators.training.checkpoint
keeps the same names until the generator family tree moves onto this floor.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from histosynth.errors import DataError
from histosynth.images import md5_file
from histosynth.json_record import read_json_record, require_fields

CHECKPOINT_FILE = "checkpoint.pt"
GENERATOR_FILE = "generator.pt"
RECORD_FILE = "record.json"

# What every reader of record.json relies on (build the generator, name the classes).
RECORD_FIELDS = {"arch": "text", "class_names": "names", "n_classes": "count", "image_size": "count",
                 "latent_dim": "count", "width": "count"}
RETRAIN = "retrain the generator (`dvc repro train` or `histosynth train`)"


def read_record(model_dir: Path) -> dict[str, Any]:
    """``record.json`` of ``model_dir``, checked: a DataError says what is missing or malformed."""
    path = Path(model_dir) / RECORD_FILE
    if not path.exists():
        raise DataError(f"{path}: no training record; train a generator first (`dvc repro train`)")
    record = read_json_record(path, RETRAIN)
    require_fields(record, RECORD_FIELDS, path, RETRAIN)
    if len(record["class_names"]) != record["n_classes"]:
        raise DataError(f"{path}: n_classes = {record['n_classes']} but {len(record['class_names'])} class names; "
                        f"{RETRAIN}")
    return record


def checkpoint_hash(model_dir: Path) -> str:
    """MD5 of ``generator.pt``: identifies the generator that made a synthetic image."""
    path = Path(model_dir) / GENERATOR_FILE
    if not path.is_file():
        raise DataError(f"{path}: generator weights missing; retrain (`dvc repro train`)")
    return md5_file(path)
