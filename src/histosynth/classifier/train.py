"""Training a classifier for a fixed number of optimisation steps: seeded, so the same data and
recipe give the same weights.

A training is a :class:`Schedule`: one or more phases of a set number of steps, each drawing its
batches from one or more :class:`Stream` s of images in fixed shares (e.g. 75 % real, 25 %
synthetic), each stream's losses weighted by its own factor. Every ``eval_every`` steps the model
is scored on the validation set and the best-scoring weights are kept. Counting steps rather
than epochs is what makes arms of different sizes comparable: the same number of gradient
updates, whatever the number of images.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from histosynth import progress
from histosynth.classifier.architectures import Arch, build_classifier
from histosynth.classifier.embed import eval_batch_size
from histosynth.classifier.model import to_input
from histosynth.config.classifier import ClassifierRecipe
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.image_store import Images, batches
from histosynth.torch_runtime import single_torch_thread

log = logging.getLogger(__name__)


# (N, 3, H, W) uint8 batch, the training's generator -> the batch transformed (e.g. StrongAugment)
BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Stream:
    """Images that fill ``share`` of every batch, their losses multiplied by ``weight`` (and by
    ``class_weights[label]`` when given); ``transform`` changes each batch's images on the fly."""

    images: ImageSet
    share: float = 1.0
    weight: float = 1.0
    transform: BatchTransform | None = None
    class_weights: tuple[float, ...] | None = None

    def loss_weights(self) -> torch.Tensor:
        """The loss weight of each label."""
        per_class = torch.ones(len(self.images.class_names), dtype=torch.float64) if self.class_weights is None \
            else torch.tensor(self.class_weights, dtype=torch.float64)
        return (per_class * self.weight).float()

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Model input of the images at ``index``, read (from memory or the image store) and converted
        on their own: the same values and layout as indexing the whole stream converted at once."""
        images = self.images.images[index.numpy()]
        if self.transform is None:
            return to_input(images)
        return to_input(self.transform(torch.as_tensor(images).permute(0, 3, 1, 2), generator).permute(0, 2, 3, 1))


@dataclass(frozen=True)
class Phase:
    steps: int
    streams: tuple[Stream, ...]


@dataclass(frozen=True)
class Schedule:
    phases: tuple[Phase, ...]
    eval_every: int  # steps between validation scores (and at the last step)
    patience: int = 0  # scores without a better one before stopping early (0 = run every step)

    @property
    def steps(self) -> int:
        return sum(p.steps for p in self.phases)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.phases[0].streams[0].images.class_names


def epoch_schedule(train: ImageSet, recipe: ClassifierRecipe) -> Schedule:
    """``recipe.epochs`` passes over ``train`` (in steps), scored after every pass, with its patience."""
    per_epoch = max(1, math.ceil(len(train) / recipe.batch_size))
    return Schedule((Phase(recipe.epochs * per_epoch, (Stream(train),)),), eval_every=per_epoch,
                    patience=recipe.patience)


@dataclass(frozen=True)
class EvalRecord:
    step: int
    train_loss: float  # mean weighted loss of the steps since the previous record
    val_accuracy: float | None


@dataclass(frozen=True)
class TrainedClassifier:
    model: nn.Module  # eval mode; the best validation score's weights when a val set was given
    best_step: int
    history: tuple[EvalRecord, ...]


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
def accuracy(model: nn.Module, images: Images, labels: np.ndarray) -> float:
    """Share of (N, H, W, 3) uint8 ``images`` (an array or stored images, read a batch at a time)
    predicted as their ``labels``."""
    model.eval()
    y = torch.tensor(labels)
    correct = sum(int((model(to_input(batch)).argmax(1) == y[i : i + len(batch)]).sum())
                  for i, batch in batches(images, eval_batch_size(images)))
    return correct / max(len(images), 1)


def batch_counts(shares: Sequence[float], batch_size: int) -> list[int]:
    """Images per stream in a batch: the shares rounded so they add up to ``batch_size``."""
    total = sum(shares)
    exact = [batch_size * s / total for s in shares]
    counts = [math.floor(e) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: batch_size - sum(counts)]:
        counts[i] += 1
    return counts


class _Cycle:
    """A stream's images in seeded random order, reshuffled each time it runs out."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n, self.generator = n, generator
        self.order, self.position = torch.randperm(n, generator=generator), 0

    def take(self, k: int) -> torch.Tensor:
        parts = []
        while k > 0:
            if self.position == self.n:
                self.order, self.position = torch.randperm(self.n, generator=self.generator), 0
            part = self.order[self.position : self.position + k]
            self.position += len(part)
            k -= len(part)
            parts.append(part)
        return torch.cat(parts)


def train_classifier(train: ImageSet | Schedule, val: ImageSet | None, recipe: ClassifierRecipe,
                     arch: Arch = "small_cnn") -> TrainedClassifier:
    """Train an ``arch`` classifier on ``train`` (a set: ``recipe.epochs`` passes over it; or a
    :class:`Schedule`); with ``val``, keep the weights of the best validation accuracy.

    ``recipe`` supplies batch size, learning rate (cosine-annealed over all steps), weight decay,
    width, dihedral augmentation and seed. Training runs on one torch thread: float sums then
    add up in the same order on every machine, so the same data and recipe give byte-identical
    weights whatever the core count.
    """
    schedule = train if isinstance(train, Schedule) else epoch_schedule(train, recipe)
    for phase in schedule.phases:
        for stream in phase.streams:
            if len(stream.images) == 0:
                raise DataError("a classifier's training set is empty")
    with single_torch_thread():
        return _train(schedule, val, recipe, arch)


def _train(schedule: Schedule, val: ImageSet | None, recipe: ClassifierRecipe, arch: Arch) -> TrainedClassifier:
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    first = schedule.phases[0].streams[0].images
    model = build_classifier(arch, len(first.class_names), first.image_size, recipe.width)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    lr_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=schedule.steps)
    val_set = (val.images, val.labels) if val is not None and len(val) else None

    history: list[EvalRecord] = []
    best_state, best_step, best_acc, scores_since_best = None, schedule.steps, -1.0, 0
    step, loss_sum, loss_steps = 0, 0.0, 0
    bar = progress.bar(total=schedule.steps, desc="classifier", unit="step", leave=False, mininterval=1.0)
    stopped = False
    for phase in schedule.phases:
        streams = [(torch.tensor(s.images.labels), s.loss_weights(), s) for s in phase.streams]
        cycles = [_Cycle(len(s.images), generator) for s in phase.streams]
        counts = batch_counts([s.share for s in phase.streams], recipe.batch_size)
        for _ in range(phase.steps):
            model.train()
            xs, ys, ws = [], [], []
            for (y, weights, stream), cycle, k in zip(streams, cycles, counts):
                if k:
                    index = cycle.take(k)
                    xs.append(stream.batch(index, generator))
                    ys.append(y[index])
                    ws.append(weights[y[index]])
            xb, yb, wb = torch.cat(xs), torch.cat(ys), torch.cat(ws)
            if recipe.dihedral_augment:
                xb = random_dihedral(xb, generator)
            loss = (F.cross_entropy(model(xb), yb, reduction="none") * wb).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            lr_schedule.step()
            step += 1
            loss_sum, loss_steps = loss_sum + loss.item(), loss_steps + 1
            bar.update()
            if step % schedule.eval_every and step != schedule.steps:
                continue
            val_acc = accuracy(model, *val_set) if val_set is not None else None
            history.append(EvalRecord(step, loss_sum / loss_steps, val_acc))
            loss_sum, loss_steps = 0.0, 0
            bar.set_postfix(loss=f"{history[-1].train_loss:.3f}", val_acc="-" if val_acc is None else f"{val_acc:.3f}")
            if val_acc is not None and val_acc > best_acc:
                best_state, best_step, best_acc, scores_since_best = copy.deepcopy(model.state_dict()), step, val_acc, 0
            elif val_acc is not None:
                scores_since_best += 1
                if schedule.patience and scores_since_best >= schedule.patience:
                    log.info("no better validation accuracy for %d scores: stopping at step %d", schedule.patience, step)
                    stopped = True
                    break
        if stopped:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    log.info("classifier trained: best step %d of %d%s", best_step, step,
             "" if best_acc < 0 else f", validation accuracy {best_acc:.3f}")
    return TrainedClassifier(model.eval(), best_step, tuple(history))
