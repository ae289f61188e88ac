"""The generator training section (GAN or diffusion): loss and real-vs-fake probe curves, the fixed-noise
samples of the shipped weights and along the way (a strip of the per-epoch grids), run facts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histosynth import paths
from histosynth.report import figures
from histosynth.report.grids import as_png, enlarge_to_width
from histosynth.report.inputs import Missing, read_json, read_table
from histosynth.report.schemas import TrainMetrics

# (key in reports/train/metrics.json, label) of the run facts shown, in this order.
FACTS = (
    ("arch", "generator architecture"),
    ("epochs", "epochs"),
    ("selected_epoch", "the generator's weights are those of epoch (gan.select)"),
    ("selected_colour_kl", "their worst class's colour KL against real train"),
    ("real_vs_fake_accuracy", "final real-vs-fake probe accuracy (0.5 is best)"),
    ("d_loss", "final discriminator loss"),
    ("g_loss", "final generator loss"),
    ("denoising_loss", "final denoising loss"),
    ("device", "device"),
    ("precision", "arithmetic"),
    ("processes", "processes"),
    ("images_per_s", "training images per second"),
    ("wall_time_s", "wall time (s)"),
)


STRIP_GRIDS = 10  # at most this many of the per-epoch grids, evenly spread, the last one included


@dataclass(frozen=True)
class TrainingView:
    curves: bytes | Missing
    samples: bytes | Missing  # the fixed-noise grid after the last epoch, one row per class
    strip: list[tuple[int, bytes]] | Missing  # (epoch, grid of that epoch) in epoch order
    facts: list[tuple[str, str | int | float]]


def training_section(root: Path) -> TrainingView | Missing:
    report = root / paths.TRAIN_REPORT_DIR
    # the family's losses: a GAN's d_loss and g_loss, a diffusion model's denoising_loss (the
    # other columns are empty)
    losses = read_table(report / "losses.tsv", ["epoch"], None, sep="\t")
    if losses is not None:
        losses = losses.dropna(axis="columns", how="all")
    probe = read_table(report / "probe.tsv", ["epoch", "real_vs_fake_accuracy"],
                       ["epoch", "real_vs_fake_accuracy"], sep="\t")
    metrics = read_json(report / "metrics.json", TrainMetrics)
    samples = report / "samples_final.png"
    if losses is None and probe is None and metrics is None and not samples.is_file():
        return Missing("train")
    recorded = (metrics.model_extra or {}) if metrics is not None else {}
    return TrainingView(
        curves=Missing("train") if losses is None or probe is None else figures.training_curves(losses, probe),
        samples=enlarge_to_width(samples) if samples.is_file() else Missing("train"),
        strip=progress_strip(report / "samples"),
        facts=[(label, recorded[key]) for key, label in FACTS if key in recorded],
    )


def progress_strip(folder: Path, most: int = STRIP_GRIDS) -> list[tuple[int, bytes]] | Missing:
    """The fixed-noise grids ``epoch_NNNN.png`` in ``folder``: at most ``most``, evenly spread, first and last kept."""
    grids = sorted((int(m.group(1)), path) for path in folder.glob("epoch_*.png")
                   if (m := re.fullmatch(r"epoch_(\d+)\.png", path.name))) if folder.is_dir() else []
    if not grids:
        return Missing("train")
    picked = np.unique(np.linspace(0, len(grids) - 1, min(most, len(grids))).round().astype(int))
    return [(grids[i][0], as_png(grids[i][1])) for i in picked]
