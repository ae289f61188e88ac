"""Cross-fitted classifiers: k small CNNs, each trained on the real train split minus one fold.

Each train image is then scored by the one model that never saw it (its *out-of-fold*
prediction): how well real-trained classifiers recognise images of the generator's own
training distribution, without using val or test labels. QA's label-consistency floor is the
out-of-fold recall, and curation scores synthetic images with the k models' mean probability
and calibrates its thresholds on the out-of-fold probabilities.

Folds are stratified by class and seeded. The fold models train for the recipe's epochs with no
validation set (nothing but train labels is used) and keep their last weights; the featurenet stage
trains them beside the feature net itself (histosynth.classifier.featurenet).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from histosynth.classifier.checkpoint import load_classifier, save_classifier
from histosynth.classifier.embed import predict_proba
from histosynth.config.classifier import ClassifierRecipe
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.fsutil import atomic_write_bytes
from histosynth.image_sets import subset
from histosynth.image_store import Images, take

log = logging.getLogger(__name__)

FOLDS_DIR = "folds"
OUT_OF_FOLD_FILE = "out_of_fold.parquet"


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of each image: each class's images shuffled (seeded) and dealt out in turn."""
    folds = np.empty(len(labels), np.int64)
    rng = np.random.default_rng([seed, k])
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        folds[members] = np.arange(len(members)) % k
    return folds


@dataclass(frozen=True)
class CrossFit:
    models: list[nn.Module]
    out_of_fold: pd.DataFrame  # id, label, fold, p_0..p_{K-1}: each train image scored by the model that never saw it


def fold_trainings(train: ImageSet, recipe: ClassifierRecipe,
                   k: int) -> tuple[np.ndarray, list[tuple[ImageSet, ClassifierRecipe]]]:
    """Each image's fold, and per fold the training set (``train`` minus that fold) and recipe (its own seed)."""
    folds = stratified_folds(train.labels, k, recipe.seed)
    return folds, [(subset(train, folds != j), recipe.model_copy(update={"seed": recipe.seed + 1 + j}))
                   for j in range(k)]


def score_out_of_fold(train: ImageSet, ids: np.ndarray, folds: np.ndarray, models: list[nn.Module]) -> CrossFit:
    """Every image of ``train`` scored by the model of its fold (trained without it)."""
    probabilities = np.zeros((len(train), len(train.class_names)), np.float32)
    for j, model in enumerate(models):
        outside = folds == j
        if outside.any():
            probabilities[outside] = predict_proba(model, take(train.images, outside))
    table = pd.DataFrame({"id": ids, "label": train.labels, "fold": folds})
    for c in range(probabilities.shape[1]):
        table[f"p_{c}"] = probabilities[:, c]
    return CrossFit(models, table)


def save_cross_fit(fitted: CrossFit, out_dir: Path, record: dict) -> None:
    for j, model in enumerate(fitted.models):
        folder = out_dir / FOLDS_DIR / str(j)
        folder.mkdir(parents=True)
        save_classifier(model, {**record, "fold": j, "folds": len(fitted.models)}, folder)
    buf = io.BytesIO()
    fitted.out_of_fold.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    atomic_write_bytes(out_dir / OUT_OF_FOLD_FILE, buf.getvalue())


def load_fold_models(model_dir: Path | str) -> list[nn.Module]:
    folder = Path(model_dir) / FOLDS_DIR
    found = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: int(p.name)) if folder.is_dir() else []
    if not found:
        raise DataError(f"{model_dir}: no cross-fitted classifiers ({FOLDS_DIR}/); retrain the feature net "
                        "(`dvc repro featurenet`)")
    return [load_classifier(p)[0] for p in found]


def load_out_of_fold(model_dir: Path | str) -> pd.DataFrame:
    path = Path(model_dir) / OUT_OF_FOLD_FILE
    if not path.is_file():
        raise DataError(f"{path}: no out-of-fold predictions; retrain the feature net (`dvc repro featurenet`)")
    return pd.read_parquet(path)


def out_of_fold_probabilities(table: pd.DataFrame) -> np.ndarray:
    """(N, K) probabilities of an out-of-fold table, in its row order."""
    columns = sorted((c for c in table.columns if c.startswith("p_")), key=lambda c: int(c[2:]))
    return table[columns].to_numpy(np.float32)


def ensemble_probabilities(models: list[nn.Module], images: np.ndarray) -> np.ndarray:
    """The models' mean softmax probabilities (N, K) of (N, H, W, 3) uint8 ``images``."""
    return np.mean([predict_proba(m, images) for m in models], axis=0).astype(np.float32)


def unseen_source_probabilities(models: list[nn.Module], out_of_fold: pd.DataFrame, images: Images,
                                sources: np.ndarray) -> np.ndarray:
    """(N, K) probabilities of images made from real train images (edits, ``sources`` their ids), each
    from the cross-fitted model that never saw its source: the edit's counterpart of an out-of-fold
    prediction (a model that trained on the source would recognise it, not the edit)."""
    fold_of = out_of_fold.set_index("id")["fold"]
    missing = sorted(set(sources) - set(fold_of.index))
    if missing:
        raise DataError(f"edits of {missing[:3]}, which the cross-fitted classifiers did not train on; "
                        "retrain them on this data (`dvc repro featurenet`)")
    folds = fold_of.loc[list(sources)].to_numpy()
    out = np.zeros((len(images), models[0].n_classes), np.float32)
    for j, model in enumerate(models):
        rows = np.flatnonzero(folds == j)
        if len(rows):
            out[rows] = predict_proba(model, take(images, rows))
    return out
