"""The report's charts, drawn with matplotlib's Agg renderer as PNG bytes.

Figures are made with ``matplotlib.figure.Figure`` (not pyplot), so no global figure state
or GUI backend is involved. The PNGs carry no metadata (no matplotlib version, no time), so
the same data gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
CHANNEL_COLOURS = {"red": "#c62828", "green": "#2e7d32", "blue": "#1565c0"}


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _figure(width: float, height: float, **subplots: object) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(squeeze=False, **subplots)
    return fig, axes


def histogram_overlay(table: pd.DataFrame) -> bytes:
    """Real (solid) vs synthetic (dashed) intensity histograms, one panel per RGB channel, from a QA overlay table."""
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure(7.8, 2.6, ncols=3, sharey=True)
        for ax, (channel, colour) in zip(axes[0], CHANNEL_COLOURS.items()):
            ax.plot(table["intensity"], table[f"{channel}_real"], color=colour, lw=1.6, label="real")
            ax.plot(table["intensity"], table[f"{channel}_synthetic"], color=colour, lw=1.6, ls="--",
                    label="synthetic")
            ax.set(title=channel, xlabel="intensity (0 dark, 255 bright)", xlim=(0, 255))
            ax.set_ylim(bottom=0)
            ax.legend(loc="best")
        axes[0, 0].set_ylabel("share of pixels")
        return png_bytes(fig)


def training_curves(losses: pd.DataFrame, probe: pd.DataFrame) -> bytes:
    """Training losses per epoch (every column but ``epoch``), and the real-vs-fake probe accuracy
    against the 0.5 of chance."""
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure(9.6, 3.0, ncols=2)
        loss_ax, probe_ax = axes[0]
        for column in losses.columns.drop("epoch"):
            loss_ax.plot(losses["epoch"], losses[column], lw=1.2, label=column)
        loss_ax.set(title="Training losses", xlabel="epoch", ylabel="loss")
        loss_ax.legend(loc="best")
        probe_ax.plot(probe["epoch"], probe["real_vs_fake_accuracy"], marker="o", ms=3, lw=1.4, color="#6a1b9a",
                      label="probe accuracy")
        probe_ax.axhline(0.5, color="grey", ls=":", lw=1.2, label="chance (0.5): fakes indistinguishable")
        probe_ax.set(title="Real-vs-fake probe", xlabel="epoch", ylabel="accuracy", ylim=(0.4, 1.02))
        probe_ax.legend(loc="best")
        return png_bytes(fig)


def roc_curves(curves: Mapping[str, pd.DataFrame], columns: int = 4) -> bytes:
    """One panel per arm ({title: table with curve, fpr, tpr}): a line per class, the micro average in black."""
    with matplotlib.rc_context(STYLE):
        columns = min(columns, len(curves))
        rows = -(-len(curves) // columns)
        fig, axes = _figure(3.0 * columns, 3.1 * rows, nrows=rows, ncols=columns, sharex=True, sharey=True)
        for ax in axes.flat[len(curves):]:
            ax.set_visible(False)
        for ax, (title, table) in zip(axes.flat, curves.items()):
            for name, curve in table.groupby("curve", sort=False):
                micro = name == "micro"
                ax.plot(curve["fpr"], curve["tpr"], lw=2.0 if micro else 1.0, color="black" if micro else None,
                        label="micro average" if micro else str(name), zorder=3 if micro else 2)
            ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
            ax.set(title=title, xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
            ax.legend(loc="lower right", fontsize=6)
        for ax in axes[-1]:
            ax.set_xlabel("false positive rate")
        for ax in axes[:, 0]:
            ax.set_ylabel("true positive rate")
        return png_bytes(fig)


def sweep_curve(sweep: pd.DataFrame) -> bytes:
    """Benchmark accuracy (mean and spread over seeds) against the synthetic images added per class."""
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure(4.8, 2.8)
        ax = axes[0, 0]
        ax.errorbar(sweep["n_synthetic_per_class"], sweep["accuracy_mean"], yerr=sweep["accuracy_std"], marker="o",
                    ms=4, capsize=3, lw=1.4)
        ax.set(xlabel="synthetic images added per class", ylabel="test accuracy (real images)")
        return png_bytes(fig)


def arm_intervals(arms: Sequence[tuple[str, Mapping[str, Any]]],
                  metrics: Sequence[tuple[str, str]] = (("accuracy", "accuracy"), ("auc", "macro AUC"))) -> bytes:
    """One panel per metric, one row per arm: the mean over seeds (dot), its interval (bar) and each seed (grey).

    ``arms``: (title, {metric: object with mean, std, ci_low, ci_high, values}). The bar spans the
    confidence interval where one is given, else one standard deviation either side; one seed has none.
    """
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure(4.2 * len(metrics), 0.9 + 0.42 * len(arms), ncols=len(metrics), sharey=True)
        rows = np.arange(len(arms))[::-1]  # the first arm on top
        for ax, (key, title) in zip(axes[0], metrics):
            for y, (_, figures) in zip(rows, arms):
                spread = figures.get(key)
                if spread is None:
                    continue
                low, high = _interval(spread)
                ax.scatter(spread.values, [y] * len(spread.values), s=10, color="grey", alpha=0.6, zorder=2)
                if low is not None:
                    ax.plot([low, high], [y, y], color="#1565c0", lw=2.2, solid_capstyle="butt", zorder=3)
                    ax.plot([low, low], [y - 0.15, y + 0.15], [high, high], [y - 0.15, y + 0.15], color="#1565c0",
                            lw=1.4, zorder=3)
                ax.scatter([spread.mean], [y], s=36, color="#0d47a1", zorder=4)
            ax.set(title=title, xlabel=f"{title} on the real test images")
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.grid(axis="y", visible=False)
        axes[0, 0].set_yticks(rows, [title for title, _ in arms])
        axes[0, 0].set_ylim(-0.6, len(arms) - 0.4)
        return png_bytes(fig)


def _interval(spread: Any) -> tuple[float | None, float | None]:
    low, high = getattr(spread, "ci_low", None), getattr(spread, "ci_high", None)
    if low is not None and high is not None:
        return low, high
    std = getattr(spread, "std", None)
    return (spread.mean - std, spread.mean + std) if std else (None, None)


def featurenet_curves(history: pd.DataFrame) -> bytes:
    """The QA feature classifier's training loss and validation accuracy per epoch."""
    with matplotlib.rc_context(STYLE):
        fig, axes = _figure(8.4, 2.8, ncols=2)
        loss_ax, accuracy_ax = axes[0]
        loss_ax.plot(history["epoch"], history["train_loss"], lw=1.4, color="#c62828")
        loss_ax.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy")
        for ax in axes[0]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        accuracy_ax.plot(history["epoch"], history["val_accuracy"], marker="o", ms=3, lw=1.4, color="#2e7d32")
        accuracy_ax.set(title="Accuracy on the real validation images", xlabel="epoch", ylabel="accuracy",
                        ylim=(0, 1.02))
        return png_bytes(fig)
