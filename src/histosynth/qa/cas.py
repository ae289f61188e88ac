"""Classification Accuracy Score (Ravuri & Vinyals 2019): what a classifier learns from the
synthetic images alone, scored on real images it never saw.

Two trainings of the same small-CNN recipe (``qa.featurenet``'s batch size, learning rate, weight
decay, width and dihedral augmentation) for the same ``qa.cas.steps`` steps and seed: one on the
synthetic images only, one on the real train split only. Both are scored on the real val split
(never test) with their final weights: nothing is selected on val, so the two accuracies are
unbiased estimates and their difference is the generator's shortfall. Each runs on one torch
thread (byte-identical whatever the machine's core count), the two at once in worker processes
when the machine has two cores.

CAS is reported, not gated: a threshold needs a calibration (what CAS do held-out real images of
the same number score, draw by draw, and how much does it move with the seed) that a 2-training
figure does not give; the per-class gates already decide what ships.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from histosynth.classifier.embed import predict_proba
from histosynth.classifier.train import Phase, Schedule, Stream, train_classifier
from histosynth.config.classifier import ClassifierRecipe
from histosynth.config.qa import CasParams
from histosynth.dataset import ImageSet
from histosynth.parallel import process_map, usable_cores

log = logging.getLogger(__name__)

ARMS = ("synthetic_only", "real_only")
ARCH = "small_cnn"


def _val_predictions(train: ImageSet, val: ImageSet, steps: int, recipe: ClassifierRecipe) -> np.ndarray:
    """Train on ``train`` for ``steps`` steps (no model selection) and predict the labels of ``val``."""
    schedule = Schedule((Phase(steps, (Stream(train),)),), eval_every=steps)
    trained = train_classifier(schedule, None, recipe, ARCH)
    return predict_proba(trained.model, val.images).argmax(axis=1)


def classification_accuracy_score(params: CasParams, recipe: ClassifierRecipe, real_train: ImageSet,
                                  synthetic: ImageSet, val: ImageSet, workers: int | None = None) -> dict[str, Any]:
    """``{"synthetic_only", "real_only", "gap", "per_class": {class: {...}}, ...}``: accuracies on ``val``.

    ``workers``: trainings at once (default: 2 on a machine with 2 cores or more); changes no result.
    """
    recipe = recipe.model_copy(update={"seed": params.seed})
    sets = {"synthetic_only": synthetic, "real_only": real_train}
    workers = min(len(sets), workers or usable_cores())
    log.info("classification accuracy score: %s, %d steps on %d synthetic / %d real train images, scored on %d "
             "real val images, %d training(s) at once", ARCH, params.steps, len(synthetic), len(real_train),
             len(val), workers)
    runs = process_map(_val_predictions, [(images, val, params.steps, recipe) for images in sets.values()], workers)
    predicted = dict(zip(sets, runs))
    return _scores(predicted, val, {arm: len(images) for arm, images in sets.items()}, params)


def _scores(predicted: dict[str, np.ndarray], val: ImageSet, n_train: dict[str, int],
            params: CasParams) -> dict[str, Any]:
    labels = val.labels
    accuracy = {arm: float((p == labels).mean()) for arm, p in predicted.items()}
    per_class = {}
    for c, name in enumerate(val.class_names):
        mine = labels == c
        per_class[name] = {**{arm: float((p[mine] == c).mean()) if mine.any() else None
                              for arm, p in predicted.items()}, "n_val": int(mine.sum())}
    recalls = {arm: [v[arm] for v in per_class.values() if v[arm] is not None] for arm in predicted}
    return {
        **accuracy,
        "gap": accuracy["real_only"] - accuracy["synthetic_only"],
        "balanced_accuracy": {arm: float(np.mean(r)) for arm, r in recalls.items()},
        "per_class": per_class,
        "steps": params.steps,
        "seed": params.seed,
        "classifier": ARCH,
        "n_train": n_train,
        "n_val": len(labels),
        "scored_on": "real val",
    }
