"""What training shows while it runs: fixed-noise sample grids, loss and probe curves, metrics.

``report_dir`` layout (DVC plots/metrics):
- ``samples/epoch_0001.png``...: the fixed-noise grid (one row per class) at most ~20 epochs
- ``samples_final.png``: the grid after the last epoch
- ``losses.tsv``: epoch, d_loss, g_loss, denoising_loss (the columns of every family, empty where a
  family has no such loss, so that one DVC plot serves GANs and diffusion models), then any other
  losses of the family (gradient_penalty for wgan-gp)
- ``probe.tsv``: epoch, real_vs_fake_accuracy (0.5 = fakes indistinguishable)
- ``colour.tsv``: epoch, each class's colour KL against real train, worst (the checkpoints scored by
  histosynth.generators.training.selection)
- ``metrics.json``: final losses, probe accuracy, throughput, wall time
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid

from histosynth.fsutil import atomic_write_bytes, atomic_write_text
from histosynth.generators.training.data import to_uint8
from histosynth.generators.training.seeds import derive_seed
from histosynth.images import encode_png

GRID_PER_CLASS = 8
MAX_GRIDS = 20
SAMPLE_BATCH = 256
# Loss columns every losses.tsv carries, in this order (dvc.yaml plots them).
PLOTTED_LOSSES = ("d_loss", "g_loss", "denoising_loss")


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode without gradients, restored to its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def sample(generator: nn.Module, labels: torch.Tensor, latent_dim: int, seed: int, device: torch.device) -> torch.Tensor:
    """Images for ``labels`` from noise drawn on the CPU (the same noise on every device)."""
    z = torch.randn(len(labels), latent_dim, generator=torch.Generator().manual_seed(seed))
    with evaluating(generator):
        parts = [generator(zb.to(device), yb.to(device)).float()
                 for zb, yb in zip(z.split(SAMPLE_BATCH), labels.split(SAMPLE_BATCH))]
    return torch.cat(parts)


class SampleGrid:
    """The same latent vectors every epoch, ``per_class`` per class, one row per class."""

    def __init__(self, n_classes: int, latent_dim: int, seed: int, per_class: int = GRID_PER_CLASS) -> None:
        self.labels = torch.arange(n_classes).repeat_interleave(per_class)
        self.latent_dim, self.per_class = latent_dim, per_class
        self.seed = derive_seed(seed, "grid")

    def render(self, generator: nn.Module, device: torch.device) -> np.ndarray:
        images = sample(generator, self.labels, self.latent_dim, self.seed, device)
        grid = make_grid(images.cpu(), nrow=self.per_class, padding=2, pad_value=1.0)
        return to_uint8(grid[None])[0]


def grid_epochs(epochs: int) -> int:
    """Save a grid every this many epochs so that a run keeps at most ~MAX_GRIDS of them."""
    return max(1, math.ceil(epochs / MAX_GRIDS))


class TrainingReport:
    def __init__(self, report_dir: Path, loss_columns: Sequence[str]) -> None:
        self.dir = Path(report_dir)
        self.loss_columns = [*PLOTTED_LOSSES, *(c for c in loss_columns if c not in PLOTTED_LOSSES)]

    def start(self, fresh: bool) -> None:
        """A fresh run drops the grids of an earlier one; a resumed run keeps them."""
        if fresh and (self.dir / "samples").exists():
            shutil.rmtree(self.dir / "samples")
        (self.dir / "samples").mkdir(parents=True, exist_ok=True)

    def save_grid(self, grid: np.ndarray, epoch: int | None) -> None:
        name = "samples_final.png" if epoch is None else f"samples/epoch_{epoch:04d}.png"
        atomic_write_bytes(self.dir / name, encode_png(grid))

    def write_curves(self, history: Sequence[dict[str, Any]]) -> None:
        self._write_tsv("losses.tsv", ["epoch", *self.loss_columns], history)
        probed = [row for row in history if row["real_vs_fake_accuracy"] is not None]
        self._write_tsv("probe.tsv", ["epoch", "real_vs_fake_accuracy"], probed)

    def write_colour(self, scores: Sequence[dict[str, Any]], class_names: Sequence[str]) -> None:
        """``colour.tsv``: each scored epoch's val colour KL per class and of the worst class."""
        rows = [{"epoch": row["epoch"], **dict(zip(class_names, row["kl"])), "worst": max(row["kl"])} for row in scores]
        self._write_tsv("colour.tsv", ["epoch", *class_names, "worst"], rows)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")

    def _write_tsv(self, name: str, columns: list[str], rows: Sequence[dict[str, Any]]) -> None:
        buf = io.StringIO()
        # restval "": a loss this family does not have stays empty
        writer = csv.DictWriter(buf, columns, restval="", delimiter="\t", lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.dir / name, buf.getvalue())
