"""The QA gates as data, evaluated in one place, and the verdict table.

A gate reads one per-class figure, an absolute threshold from ``qa.*`` and optionally a
floor factor: its effective threshold is the absolute one relaxed to ``factor * floor``
where the real-vs-real floor is worse (see histosynth.config.qa). A figure that could not be
computed (too few images) leaves its gate unevaluated: reported, not failed.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from histosynth.config.qa import QaParams
from histosynth.errors import GateFailed


@dataclass(frozen=True)
class Gate:
    name: str
    metric: str  # key in a class's figures; its floor is "<metric>_real_floor"
    higher_is_better: bool
    threshold_param: str | None  # dotted key under qa.*, e.g. "kl.max"
    floor_factor_param: str | None = None

    @property
    def floor_key(self) -> str:
        return f"{self.metric}_real_floor"


GATES: tuple[Gate, ...] = (
    Gate("colour_kl", "kl", False, "kl.max", "kl.floor_factor"),
    Gate("fid", "fid", False, None, "fid.floor_factor"),
    Gate("label_consistency", "label_agreement", True, "label.min_agreement", "label.floor_factor"),
    Gate("coverage", "coverage", True, "diversity.min_coverage", "diversity.floor_factor"),
    Gate("duplicates", "duplicate_share", False, "diversity.max_duplicate_share"),
    Gate("memorisation_pixel", "memorised_share_pixel", False, "memorisation.max_share"),
    Gate("memorisation_feature", "memorised_share_feature", False, "memorisation.max_share"),
)


@dataclass(frozen=True)
class GateResult:
    class_name: str
    gate: Gate
    value: float | None
    floor: float | None
    threshold: float | None  # effective threshold
    passed: bool | None  # None: not evaluated

    @property
    def failed(self) -> bool:
        return self.passed is False

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "threshold": self.threshold}


def _param(params: QaParams, dotted: str) -> float:
    value: Any = params
    for part in dotted.split("."):
        value = getattr(value, part)
    return float(value)


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def effective_threshold(gate: Gate, params: QaParams, floor: float | None) -> float | None:
    candidates = []
    if gate.threshold_param:
        candidates.append(_param(params, gate.threshold_param))
    if gate.floor_factor_param and floor is not None:
        candidates.append(_param(params, gate.floor_factor_param) * floor)
    if not candidates:
        return None
    return min(candidates) if gate.higher_is_better else max(candidates)


def evaluate_gates(figures: dict[str, dict[str, Any]], params: QaParams) -> list[GateResult]:
    """Every gate for every class of ``figures`` ({class name: {key: value}})."""
    results = []
    for class_name, values in figures.items():
        for gate in GATES:
            value, floor = _finite(values.get(gate.metric)), _finite(values.get(gate.floor_key))
            threshold = effective_threshold(gate, params, floor)
            passed = None
            if value is not None and threshold is not None:
                compare = operator.ge if gate.higher_is_better else operator.le
                passed = bool(compare(value, threshold))
            results.append(GateResult(class_name, gate, value, floor, threshold, passed))
    return results


def _rule(gate: Gate) -> str:
    parts = [f"qa.{gate.threshold_param}"] if gate.threshold_param else []
    if gate.floor_factor_param:
        parts.append(f"qa.{gate.floor_factor_param} x floor")
    return (" or " if len(parts) > 1 else "").join(parts)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def verdict_table(results: list[GateResult]) -> str:
    """A fixed-width table: class, gate, value, threshold (with its direction), floor, rule."""
    header = ("class", "gate", "value", "threshold", "floor", "from")
    body = [(r.class_name, r.gate.name, _fmt(r.value),
             f"{'>=' if r.gate.higher_is_better else '<='} {_fmt(r.threshold)}",
             _fmt(r.floor) if r.gate.floor_factor_param else "-", _rule(r.gate))
            for r in results]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (header, *body))


class QaGateFailed(GateFailed):
    """One or more QA gates failed while qa.enforce is true; the message is the verdict table."""

    def __init__(self, results: list[GateResult], report_dir: str) -> None:
        failed = [r for r in results if r.failed]
        classes = sorted({r.class_name for r in failed})
        super().__init__(
            f"QA gates failed for {len(classes)} class(es) ({len(failed)} gate(s)); all figures are in "
            f"{report_dir}/metrics.json. Set qa.enforce: false to report without failing.\n"
            + verdict_table(failed))
