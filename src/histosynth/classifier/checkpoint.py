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
    record = json.loads(record_path.read_text(encoding="utf-8"))
    cfg = record["model"]
    model = SmallCNN(cfg["n_classes"], cfg["image_size"], cfg["width"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), record
