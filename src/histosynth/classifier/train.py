"""Training a classifier with a fixed recipe: seeded, so the same data and recipe give the same weights."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from histosynth.classifier.architectures import Arch, build_classifier
from histosynth.classifier.model import to_input
from histosynth.config.classifier import ClassifierRecipe
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.generate.sampler import single_torch_thread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_accuracy: float | None


@dataclass(frozen=True)
class TrainedClassifier:
    model: nn.Module  # eval mode; the best validation epoch's weights when a val set was given
    best_epoch: int
    history: tuple[EpochRecord, ...]


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image flipped and rotated by a multiple of 90 degrees, one of 8 ways at random."""
    ops = torch.randint(0, 8, (len(x),), generator=generator)
    out = torch.empty_like(x)
    for op in range(8):
        idx = (ops == op).nonzero(as_tuple=True)[0]
        if len(idx):
            turned = torch.rot90(x[idx], op % 4, dims=(2, 3))
            out[idx] = turned.flip(3) if op >= 4 else turned
    return out


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / max(len(x), 1)


def train_classifier(train: ImageSet, val: ImageSet | None, recipe: ClassifierRecipe,
                     arch: Arch = "small_cnn") -> TrainedClassifier:
    """Train an ``arch`` classifier on ``train``; with ``val``, keep the epoch of best val accuracy.

    Training runs on one torch thread: float sums then add up in the same order on every
    machine, so the same data and recipe give byte-identical weights whatever the core count
    (and a small CNN loses little: 12 s for the 600 demo tiles on a busy 2-core machine).
    """
    if len(train) == 0:
        raise DataError("the classifier's training set is empty")
    with single_torch_thread():
        return _train(train, val, recipe, arch)


def _train(train: ImageSet, val: ImageSet | None, recipe: ClassifierRecipe, arch: Arch) -> TrainedClassifier:
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = build_classifier(arch, len(train.class_names), train.image_size, recipe.width)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=recipe.epochs)
    x, y = to_input(train.images), torch.tensor(train.labels)
    val_xy = (to_input(val.images), torch.tensor(val.labels)) if val is not None and len(val) else None

    history: list[EpochRecord] = []
    best_state, best_epoch, best_acc = None, recipe.epochs, -1.0
    epochs = tqdm(range(1, recipe.epochs + 1), desc="classifier", unit="epoch", leave=False)
    for epoch in epochs:
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            xb = random_dihedral(x[idx], generator) if recipe.dihedral_augment else x[idx]
            loss = F.cross_entropy(model(xb), y[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        schedule.step()
        val_acc = accuracy(model, *val_xy) if val_xy is not None else None
        history.append(EpochRecord(epoch, total / len(x), val_acc))
        epochs.set_postfix(loss=f"{total / len(x):.3f}", val_acc="-" if val_acc is None else f"{val_acc:.3f}")
        if val_acc is not None and val_acc > best_acc:
            best_state, best_epoch, best_acc = copy.deepcopy(model.state_dict()), epoch, val_acc
        elif val_acc is not None and recipe.patience and epoch - best_epoch >= recipe.patience:
            log.info("no better validation accuracy for %d epochs: stopping at epoch %d", recipe.patience, epoch)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    log.info("classifier trained: best epoch %d%s", best_epoch,
             "" if best_acc < 0 else f", validation accuracy {best_acc:.3f}")
    return TrainedClassifier(model.eval(), best_epoch, tuple(history))
