"""The `featurenet` stage: the domain feature extractor that QA measures synthetic images with.

A :class:`SmallCNN` trained on the real train split, with the epoch of best accuracy on the real
val split kept. Its pooled features are the domain feature space of QA (FID,
precision/recall/density/coverage, memorisation) and its predictions check label consistency.
It never sees the real test split, which stays untouched for the benchmark: its figures are on
val (the val split chose the epoch, nothing else).

Beside it, ``qa.featurenet.folds`` cross-fitted copies (histosynth.classifier.crossfit) give every
train image an out-of-fold prediction, saved with them in the same folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from histosynth.classifier.checkpoint import save_classifier
from histosynth.classifier.embed import embed
from histosynth.classifier.crossfit import (fold_trainings, out_of_fold_probabilities, save_cross_fit,
                                           score_out_of_fold)
from histosynth.config.classifier import FeaturenetParams
from histosynth.classifier.train import train_classifier
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.fsutil import atomic_output_dir, atomic_write_text
from histosynth.output_policy import check_outputs
from histosynth.image_sets import open_image_set
from histosynth.images import md5_file
from histosynth.manifest import MANIFEST_NAME, read_manifest
from histosynth.parallel import process_map

log = logging.getLogger(__name__)


def per_class_recall(predictions: np.ndarray, labels: np.ndarray,
                     class_names: tuple[str, ...]) -> dict[str, float | None]:
    """Share of each class's images predicted as that class (None for a class with no images)."""
    return {name: (float(np.mean(predictions[labels == c] == c)) if np.any(labels == c) else None)
            for c, name in enumerate(class_names)}


def train_featurenet(recipe: FeaturenetParams, real_dir: Path, out_dir: Path,
                     report_dir: Path | None = None, workers: int = 1) -> dict[str, Any]:
    """Train on ``real_dir``'s train split, write ``out_dir`` (weights + record); return the record.

    ``workers`` trainings (the feature net and its ``recipe.folds`` cross-fitted copies) run at once,
    in worker processes when more than 1 (see :func:`histosynth.parallel.process_map`); the bytes
    written do not depend on it.

    With ``report_dir``, also write ``metrics.json`` (val accuracy, per-class val recall) and
    ``history.csv`` (loss and validation accuracy per epoch) there for ``dvc metrics``/``plots``.
    """
    real_dir, out_dir = Path(real_dir), Path(out_dir)
    check_outputs({"output folder": out_dir, "report folder": report_dir}, {"real images": real_dir})
    # decoded once into image stores and read a batch at a time, by every training at once
    train, val = (open_image_set(real_dir, split) for split in ("train", "val"))
    if len(train) == 0:
        raise DataError(f"{real_dir}: the real train split is empty; the feature net needs training images")
    log.info("training the feature net on %d real train images (%d val), %d classes, and %d cross-fitted copies "
             "(each without a fold of %d images); %d training(s) at a time", len(train), len(val),
             len(train.class_names), recipe.folds, len(train) // recipe.folds, min(workers, recipe.folds + 1))
    manifest = read_manifest(real_dir)
    folds, fold_jobs = fold_trainings(train, recipe, recipe.folds)
    # the feature net (scored on val after every epoch) and its cross-fitted copies are independent
    # trainings on one torch thread each: `workers` at a time, the same bytes whatever the number
    trained, *fold_runs = process_map(train_classifier, [(train, val, recipe), *((s, None, r) for s, r in fold_jobs)],
                                      workers)
    fitted = score_out_of_fold(train, manifest.loc[manifest["split"] == "train", "id"].to_numpy(str), folds,
                               [run.model for run in fold_runs])
    oof_predictions = out_of_fold_probabilities(fitted.out_of_fold).argmax(axis=1)
    metrics = {**_evaluate(trained.model, val),
               "out_of_fold_accuracy": float(np.mean(oof_predictions == train.labels)),
               "out_of_fold_recall": per_class_recall(oof_predictions, train.labels, train.class_names)}
    record = {
        "class_names": list(train.class_names),
        "recipe": recipe.model_dump(),
        "best_epoch": 1 + next(i for i, h in enumerate(trained.history) if h.step == trained.best_step),
        "epochs_run": len(trained.history),
        "n_images": {"train": len(train), "val": len(val)},
        "real_manifest_md5": md5_file(real_dir / MANIFEST_NAME),
        "torch_version": torch.__version__,
        **metrics,
    }
    with atomic_output_dir(out_dir) as tmp:
        save_classifier(trained.model, record, tmp)
        save_cross_fit(fitted, tmp, {"class_names": record["class_names"], "recipe": record["recipe"],
                                     "real_manifest_md5": record["real_manifest_md5"]})
    if report_dir is not None:
        with atomic_output_dir(report_dir) as tmp:
            atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2) + "\n")
            rows = ["epoch,train_loss,val_accuracy"] + [
                f"{epoch},{h.train_loss:.6f},{'' if h.val_accuracy is None else f'{h.val_accuracy:.6f}'}"
                for epoch, h in enumerate(trained.history, start=1)]
            atomic_write_text(tmp / "history.csv", "\n".join(rows) + "\n")
    log.info("feature net: real val accuracy %s", metrics["val_accuracy"])
    return record


def _evaluate(model: torch.nn.Module, val: ImageSet) -> dict[str, Any]:
    if len(val) == 0:
        return {"val_accuracy": None, "val_recall": {}}
    predictions = embed(model, val.images, desc="val features").predictions
    return {"val_accuracy": float(np.mean(predictions == val.labels)),
            "val_recall": per_class_recall(predictions, val.labels, val.class_names)}
