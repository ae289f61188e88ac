"""study.json, study.md (tables) and study.png (gain against real images per class) in the study folder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from histosynth.fsutil import atomic_write_bytes, atomic_write_text

JSON_FILE, MARKDOWN_FILE, PICTURE_FILE = "study.json", "study.md", "study.png"
PICTURED = (("augmented_vs_real_only", "#1565c0"), ("strong_synthetic_vs_strong", "#2e7d32"),
            ("affine_synthetic_vs_affine", "#c62828"))
METRIC_TITLES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_auc": "macro AUC"}


def _figure(f: dict[str, Any]) -> str:
    return f"{f['mean']:.3f} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]"


def _gain(g: dict[str, Any]) -> str:
    verdict = " (better)" if g["ci_low"] > 0 else " (worse)" if g["ci_high"] < 0 else ""
    return f"{g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]{verdict}"


def _regime_title(name: str, regime: dict[str, Any]) -> str:
    real = "all" if regime["real_per_class"] is None else regime["real_per_class"]
    tail = f", long tail ({', '.join(regime['rare_classes'])} cut)" if regime["long_tail"] else ""
    return f"### {name}: {real} real train images per class{tail}, recipe {regime['recipe']}"


def markdown(result: dict[str, Any], picture_file: str = PICTURE_FILE) -> str:
    """The picture (``picture_file``, beside the markdown), then per regime every arm's figures, the gains
    and the rare classes' recall; mean [95 % interval]."""
    lines = [f"![Accuracy gains against real train images per class, 95 % intervals]({picture_file})", "",
             "Mean over trainings [95 % bootstrap interval over test images, classifier seeds and generator seeds]; "
             "model selection on real val, every figure on real test.", ""]
    for name, regime in result["regimes"].items():
        lines += [_regime_title(name, regime), "",
                  "| arm | training images | trainings | " + " | ".join(METRIC_TITLES.values()) + " |",
                  "|---|---|---|" + "---|" * len(METRIC_TITLES)]
        for arm, figures in regime["arms"].items():
            lines.append(f"| {arm} | {figures['n_train']} | {figures['trainings']} | "
                         + " | ".join(_figure(figures[key]) for key in METRIC_TITLES) + " |")
        if regime["gains"]:
            lines += ["", "| gain | " + " | ".join(METRIC_TITLES.values()) + " |", "|---|" + "---|" * len(METRIC_TITLES)]
            for gain, figures in regime["gains"].items():
                lines.append(f"| {gain.replace('_vs_', ' - ')} | "
                             + " | ".join(_gain(figures[key]) for key in METRIC_TITLES) + " |")
        if regime["rare_class_recall"]:
            rare = regime["rare_classes"]
            lines += ["", "| recall of the rare classes | " + " | ".join(rare) + " |", "|---|" + "---|" * len(rare)]
            for arm, recalls in regime["rare_class_recall"].items():
                lines.append(f"| {arm} | " + " | ".join(_figure(recalls[c]) for c in rare) + " |")
        verdicts = {True: "passed", False: "failed", None: "unknown"}
        lines += ["", "QA of the synthetic images (reported, not enforced): "
                  + ", ".join(f"{run} {verdicts[passed]}" for run, passed in regime["qa_passed"].items()) + "."]
        lines.append("")
    return "\n".join(lines)


def picture(result: dict[str, Any]) -> bytes:
    """PNG: each pictured accuracy gain with its 95 % interval against real train images per class; the
    long-tail regimes as open markers at their cap (at the right edge when uncapped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = result["regimes"]
    capped = sorted({r["real_per_class"] for r in regimes.values() if r["real_per_class"] is not None})
    edge = (max(capped) * 1.3) if capped else 1
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
    for offset, (gain, colour) in enumerate(PICTURED):
        for long_tail, marker, style in ((False, "o", "-"), (True, "s", "none")):
            points = sorted(((r["real_per_class"] or edge), r["gains"][gain]["accuracy"])
                            for r in regimes.values() if r["long_tail"] == long_tail and gain in r["gains"])
            if not points:
                continue
            x = [p[0] * (1 + 0.03 * (offset - 1)) for p in points]  # side by side, not on top of each other
            mean = [p[1]["mean"] for p in points]
            err = [[p[1]["mean"] - p[1]["ci_low"] for p in points], [p[1]["ci_high"] - p[1]["mean"] for p in points]]
            label = gain.replace("_vs_", " - ") + (" (long tail)" if long_tail else "")
            ax.errorbar(x, mean, yerr=err, marker=marker, linestyle=style, capsize=4, color=colour, label=label,
                        markerfacecolor="white" if long_tail else colour)
    ax.axhline(0, color="grey", lw=1)
    if capped:
        ax.set_xscale("log")
        ax.set_xticks(capped, [str(n) for n in capped])
        ax.minorticks_off()
    ax.set(xlabel="real train images per class", ylabel="accuracy gain on real test (95 % interval)",
           title="Do synthetic images help?")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def write_outputs(study_dir: Path, result: dict[str, Any]) -> None:
    atomic_write_text(study_dir / JSON_FILE, json.dumps(result, indent=1) + "\n")
    atomic_write_text(study_dir / MARKDOWN_FILE, markdown(result))
    atomic_write_bytes(study_dir / PICTURE_FILE, picture(result))
