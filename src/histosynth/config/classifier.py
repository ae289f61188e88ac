"""A training recipe for histosynth.classifier's small CNN: used by `qa.featurenet` and reusable by the benchmark."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from histosynth.config.base import MAX_BATCH, MAX_SEED, Section

# The architectures histosynth.classifier can train (histosynth.classifier.architectures).
Arch = Literal["small_cnn", "resnet18"]
ARCHS: tuple[str, ...] = get_args(Arch)


class ClassifierRecipe(Section):
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(64, ge=2, le=MAX_BATCH)
    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    # Base channel count; the feature vector (penultimate layer) has 4 * width values.
    width: int = Field(16, ge=4, le=256)
    # With a validation set: stop after this many epochs without a better validation accuracy
    # (0 = run all epochs) and keep the best epoch's weights.
    patience: int = Field(10, ge=0)
    # Random flips and 90-degree rotations of training batches: tissue tiles have no up or left.
    dihedral_augment: bool = True
    seed: int = Field(0, ge=0, le=MAX_SEED)


class FeaturenetParams(ClassifierRecipe):
    """``qa.featurenet``: the feature net's recipe, and how many cross-fitted copies to train.

    The cross-fitted classifiers (each trained on the real train split minus one fold, all epochs,
    no val) give every train image an out-of-fold prediction: QA's label-consistency floor and
    curation's scores and calibration come from them (histosynth.classifier.crossfit).
    """

    folds: int = Field(4, ge=2, le=10)
