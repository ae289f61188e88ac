"""Which of a run's checkpoints becomes the generator: the last, or the one whose colours match the real images best.

A GAN's colours swing from epoch to epoch (on the demo, one class's colour KL went from 0.026 to
0.117 and back between epochs 150 and 300 of one run), so the weights after the last epoch are a
draw, and another CPU's kernels (or another seed) draw other ones. Choosing among the late
checkpoints by how close their colours are to the real images' makes the outcome less of a draw.

Every ``gan.select.every`` epochs within the last ``gan.select.window`` share of the run (and after
the last epoch), the sampling generator draws ``gan.select.n_per_class`` images per class from fixed
noise, and each class's colour-histogram KL against that class's real train images is recorded
(``reports/train/colour.tsv``; the definition QA's colour gate uses, 32 bins, smoothing 1). With
``gan.select.by: train_colour`` the checkpoint whose worst class is lowest becomes ``generator.pt``
(the earliest on a tie); ``last`` scores nothing and keeps the last weights, as before the option.

``curated_colour`` scores what ships instead: curation keeps the samples its real-trained classifiers
recognise surely, and that shifts colours (on the demo one class's colour KL went from 0.032 over all
candidates to 0.053 over those passing the confidence test, 0.042 over the kept ones), so a checkpoint
whose raw samples match best need not be the one whose kept samples do. Each class is sampled
``SURPLUS`` times over, and the first ``n_per_class`` samples that pass curation's confidence and
realism tests (:mod:`histosynth.curate.acceptance`, handed in by the train stage) are scored.

Real train (as stylegan2-ada judges its snapshots by FID against the training set), not val: on the
demo val holds 13 stroma tiles, and dab_positive's val tiles differ from its train tiles by a colour
KL of 0.19, so a choice by val chased one class's split and failed QA (bench/README.md, CPU capabilities).
QA's colour gate reads the same real train images, with other samples (curated, other noise); the
gate is then no longer blind to the choice, which docs/generators.md says. The real images are
those of ``data/real`` (with ``gan.train_on: augmented`` too: the affine children shift colours).

The scores and the chosen weights travel in ``checkpoint.pt``, so a resumed run chooses what an
uninterrupted one does.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from histosynth.colour_histograms import colour_histograms, kl_per_channel
from histosynth.dataset import ImageSet
from histosynth.errors import DataError
from histosynth.generators.training.data import to_uint8
from histosynth.generators.training.monitor import sample
from histosynth.generators.training.seeds import derive_seed
from histosynth.image_store import batches

log = logging.getLogger(__name__)

BINS = 32
SMOOTHING = 1.0
READ_BATCH = 1024  # real images histogrammed at once: memory stays flat however many there are
SURPLUS = 3  # samples drawn per scored one under curated_colour: generate.overgenerate's default
MIN_SCORED = 10  # fewer passing samples than this: the class is scored on all its samples
CHOOSING = ("train_colour", "curated_colour")


class SampleFilter(Protocol):
    """Which samples curation would keep (:class:`histosynth.curate.acceptance.CandidateTests`)."""

    identity: str  # changes when the tests do: a checkpoint's scores are only continued under the same tests

    def accepts(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray: ...


def class_colour_counts(images: ImageSet, n_classes: int) -> np.ndarray:
    """(n_classes, 3, BINS) pixel counts of ``images`` per class, read a batch at a time."""
    counts = np.zeros((n_classes, 3, BINS))
    for start, block in batches(images.images, READ_BATCH):
        labels = images.labels[start:start + len(block)]
        for c in np.unique(labels):
            counts[c] += colour_histograms(block[labels == c], BINS)
    return counts


def colour_reference(real_train: ImageSet, class_names: tuple[str, ...]) -> np.ndarray:
    """Per-class colour counts of the real train images; every class must have some."""
    if real_train.class_names != class_names:
        raise DataError(f"the real train split's classes {list(real_train.class_names)} differ from the training "
                        f"set's {list(class_names)}; rerun the pipeline from ingest")
    counts = class_colour_counts(real_train, len(class_names))
    empty = [name for name, c in zip(class_names, counts) if c.sum() == 0]
    if empty:
        raise DataError(f"no real train images of class(es) {', '.join(empty)}: gan.select.by chooses "
                        "chooses the checkpoint by their colours; rerun ingest with images of every class or set "
                        "gan.select.by: last")
    return counts


def colour_kl_of(generator: nn.Module, reference: np.ndarray, n_per_class: int, latent_dim: int, seed: int,
                 device: torch.device, sample_filter: SampleFilter | None = None) -> np.ndarray:
    """Per class, the colour KL(real train || samples) of ``n_per_class`` samples from fixed noise: the first
    ``n_per_class`` of ``SURPLUS`` times as many that ``sample_filter`` accepts, when one is given."""
    n_classes = len(reference)
    drawn = n_per_class * (SURPLUS if sample_filter is not None else 1)
    labels = torch.arange(n_classes).repeat_interleave(drawn)
    images = to_uint8(sample(generator, labels, latent_dim, derive_seed(seed, "select"), device))
    labels_np = labels.numpy()
    keep = np.ones(len(labels_np), bool) if sample_filter is None else sample_filter.accepts(images, labels_np)
    histograms = []
    for c in range(n_classes):
        mine = np.flatnonzero(labels_np == c)
        kept = mine[keep[mine]][:n_per_class]
        if len(kept) < MIN_SCORED:
            kept = mine[:n_per_class]
            log.warning("class %d: %d of %d samples pass curation's tests; scoring the first %d as drawn", c,
                        int(keep[mine].sum()), len(mine), len(kept))
        histograms.append(colour_histograms(images[kept], BINS))
    return kl_per_channel(reference, np.stack(histograms), SMOOTHING).mean(axis=1)


def first_candidate(epochs: int, window: float) -> int:
    """The first epoch (1-based) inside the last ``window`` share of ``epochs``."""
    return max(1, epochs - math.floor(window * epochs) + 1)


@dataclass
class CheckpointChoice:
    """The colour scores of a run's candidate epochs and the weights of the best one so far."""

    by: str  # last | train_colour | curated_colour
    window: float
    every: int
    epochs: int
    scores: list[dict[str, Any]] = field(default_factory=list)  # {"epoch", "kl": [per class]}
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None

    @property
    def chooses(self) -> bool:
        return self.by in CHOOSING

    def is_candidate(self, epoch: int) -> bool:
        return epoch >= first_candidate(self.epochs, self.window) and (epoch % self.every == 0 or epoch == self.epochs)

    def offer(self, epoch: int, kl: np.ndarray, generator: nn.Module) -> None:
        """Record epoch ``epoch``'s per-class KL; keep ``generator``'s weights when it is the best so far."""
        self.scores.append({"epoch": epoch, "kl": [float(v) for v in kl]})
        if self.chooses and (self.best_weights is None or float(kl.max()) < self._worst(self.best_epoch)):
            self.best_epoch = epoch
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in generator.state_dict().items()}

    def _worst(self, epoch: int) -> float:
        return max(next(row["kl"] for row in self.scores if row["epoch"] == epoch))

    def chosen(self, epoch: int) -> tuple[int, float | None]:
        """The epoch whose weights ``generator.pt`` holds after epoch ``epoch``, and its worst class's KL."""
        chosen = self.best_epoch if self.chooses and self.best_weights is not None else epoch
        scored = [row for row in self.scores if row["epoch"] == chosen]
        return chosen, (max(scored[0]["kl"]) if scored else None)

    # -- checkpoint ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"scores": [dict(row) for row in self.scores], "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: dict[str, Any] | None) -> bool:
        """Continue from a checkpoint's choice; False when this run's candidates would choose otherwise
        (``gan.epochs`` grew and the window moved past the kept weights), so it must start fresh."""
        scores = [row for row in (state or {}).get("scores", []) if self.is_candidate(row["epoch"])]
        self.scores = scores
        self.best_epoch, self.best_weights = 0, None
        if not self.chooses or not scores:
            return True
        best = min(scores, key=lambda row: max(row["kl"]))  # min keeps the first of equals: the earliest
        if state.get("best_epoch") != best["epoch"] or "best_weights" not in state:
            return False
        self.best_epoch, self.best_weights = best["epoch"], state["best_weights"]
        return True
