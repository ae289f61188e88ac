"""Saving and loading a trained classifier: tensors-only weights plus a JSON record."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from histosynth.classifier.model import SmallCNN
from histosynth.errors import DataError
from histosynth.fsutil import atomic_write_bytes, atomic_write_text
from histosynth.json_record import read_json_record, require_fields

WEIGHTS_FILE = "weights.pt"
RECORD_FILE = "record.json"


def save_classifier(model: SmallCNN, record: dict[str, Any], out_dir: Path) -> None:
    """Write ``weights.pt`` (a state dict: loads with weights_only=True) and ``record.json``.

    ``record`` is stored with the model's configuration added under ``"model"``.
    """
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(out_dir / WEIGHTS_FILE, buf.getvalue())
    full = {"model": {"arch": "small_cnn", **model.config(), "feature_dim": model.feature_dim}, **record}
    atomic_write_text(out_dir / RECORD_FILE, json.dumps(full, indent=2) + "\n")


def load_classifier(model_dir: Path | str) -> tuple[SmallCNN, dict[str, Any]]:
    """The classifier saved in ``model_dir`` (eval mode) and its record."""
    model_dir = Path(model_dir)
    weights, record_path = model_dir / WEIGHTS_FILE, model_dir / RECORD_FILE
    if not weights.is_file() or not record_path.is_file():
        raise DataError(f"{model_dir}: no trained classifier ({WEIGHTS_FILE} + {RECORD_FILE}); "
                        "train it first (`dvc repro featurenet` or `histosynth featurenet`)")
    fix = "retrain it (`dvc repro featurenet` or `histosynth featurenet`)"
    record = read_json_record(record_path, fix)
    require_fields(record, {"model": "object"}, record_path, fix)
    cfg = record["model"]
    require_fields(cfg, {"n_classes": "count", "image_size": "count", "width": "count", "feature_dim": "count"},
                   f"{record_path} (model)", fix)
    model = SmallCNN(cfg["n_classes"], cfg["image_size"], cfg["width"])
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as err:  # truncated, foreign, pickled-object or mismatching weights all land here
        raise DataError(f"{weights}: not readable weights for the classifier in {RECORD_FILE} "
                        f"({' '.join(str(err).split())[:200]}); {fix}") from None
    return model.eval(), record
