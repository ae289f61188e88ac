"""The generator training section (GAN or diffusion): loss and real-vs-fake probe curves, the final
fixed-noise samples, run facts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from histosynth import paths
from histosynth.report import figures
from histosynth.report.grids import enlarge_to_width
from histosynth.report.inputs import Missing, read_json, read_table
from histosynth.report.schemas import TrainMetrics

# (key in reports/train/metrics.json, label) of the run facts shown, in this order.
FACTS = (
    ("arch", "generator architecture"),
    ("epochs", "epochs"),
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


@dataclass(frozen=True)
class TrainingView:
    curves: bytes | Missing
    samples: bytes | Missing  # the fixed-noise grid after the last epoch, one row per class
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
        facts=[(label, recorded[key]) for key, label in FACTS if key in recorded],
    )
