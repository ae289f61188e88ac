"""The QA gates (declared with their metrics in histosynth.qa.registry) evaluated in one place, and
the verdict table.

A gate reads one per-class figure, an optional absolute limit and an optional floor factor
from ``qa.*`` (the rule is explained in histosynth.config.qa):

- lower is better:  threshold = min(limit, factor x the floor's upper quantile)
- higher is better: threshold = max(limit, factor x the floor's lower quantile)
- memorisation: threshold = max(limit, the floor's upper quantile). Its floor is the share of
  held-out real images flagged when the near-copy thresholds come from the other half of them;
  with few held-out images per class that share can exceed the limit, and a synthetic set is
  not called a copy for scoring what real images score.

The margin is the headroom left, as a share of the threshold (negative when the gate fails).
A figure that could not be computed (too few images) leaves its gate unevaluated: reported,
not failed.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from histosynth.config.qa import QaParams
from histosynth.errors import GateFailed
from histosynth.neutralise import for_terminal
from histosynth.qa.floors import floor_keys
from histosynth.qa.registry import GATES, Gate


@dataclass(frozen=True)
class Floor:
    mean: float
    sd: float
    quantile: float  # the quantile on the bad side, which the threshold is built on


@dataclass(frozen=True)
class GateResult:
    class_name: str
    gate: Gate
    value: float | None
    floor: Floor | None
    threshold: float | None
    passed: bool | None  # None: not evaluated

    @property
    def failed(self) -> bool:
        return self.passed is False

    @property
    def margin(self) -> float | None:
        """Headroom as a share of the threshold: (threshold - value) / threshold for lower-is-better."""
        if self.value is None or self.threshold is None:
            return None
        headroom = self.value - self.threshold if self.gate.higher_is_better else self.threshold - self.value
        return headroom / abs(self.threshold) if self.threshold else (0.0 if headroom == 0 else math.copysign(1, headroom))

    def as_json(self) -> dict[str, Any]:
        floor = self.floor
        return {"passed": self.passed, "value": self.value, "threshold": self.threshold, "margin": self.margin,
                "floor": None if floor is None else floor.mean, "floor_sd": None if floor is None else floor.sd,
                "floor_quantile": None if floor is None else floor.quantile}


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def floor_of(gate: Gate, values: dict[str, Any]) -> Floor | None:
    """The gate's floor from a class's figures (None when it has none or it could not be computed)."""
    if not gate.has_floor:
        return None
    mean, sd, low, high = (_finite(values.get(k)) for k in floor_keys(gate.metric))
    quantile = low if gate.higher_is_better else high
    if mean is None or quantile is None:
        return None
    return Floor(mean, sd or 0.0, quantile)


def effective_threshold(gate: Gate, params: QaParams, floor: Floor | None) -> float | None:
    if gate.relax_to_floor:
        assert gate.limit is not None, f"{gate.name}: a gate relaxed to its floor needs a limit"
        limit = gate.limit.read(params)
        return limit if floor is None else max(limit, floor.quantile)
    candidates = []
    if gate.limit is not None:
        candidates.append(gate.limit.read(params))
    if gate.floor_factor is not None and floor is not None:
        candidates.append(gate.floor_factor.read(params) * floor.quantile)
    if not candidates:
        return None
    return max(candidates) if gate.higher_is_better else min(candidates)


def evaluate_gates(figures: dict[str, dict[str, Any]], params: QaParams) -> list[GateResult]:
    """Every gate for every class of ``figures`` ({class name: {key: value}})."""
    results = []
    for class_name, values in figures.items():
        for gate in GATES:
            value, floor = _finite(values.get(gate.metric)), floor_of(gate, values)
            # Without a floor (too few real images to draw one) a floor gate is not evaluated:
            # its absolute limit alone would judge a figure whose noise nobody measured.
            threshold = None if gate.floor_factor and floor is None else effective_threshold(gate, params, floor)
            passed = None
            if value is not None and threshold is not None:
                compare = operator.ge if gate.higher_is_better else operator.le
                passed = bool(compare(value, threshold))
            results.append(GateResult(class_name, gate, value, floor, threshold, passed))
    return results


def _rule(gate: Gate) -> str:
    if gate.relax_to_floor:
        return f"max({gate.limit}, floor q_high)"
    parts = [str(gate.limit)] if gate.limit else []
    if gate.floor_factor:
        side = "q_low" if gate.higher_is_better else "q_high"
        parts.append(f"{gate.floor_factor} x floor {side}")
    return f"{'max' if gate.higher_is_better else 'min'}({', '.join(parts)})" if len(parts) > 1 else parts[0]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _verdict(r: GateResult) -> str:
    return {True: "pass", False: "FAIL", None: "n/a"}[r.passed]


def verdict_table(results: list[GateResult]) -> str:
    """A fixed-width table: class, gate, verdict, value, threshold, floor (mean ± sd, bad-side quantile),
    margin and the rule the threshold came from."""
    header = ("class", "gate", "verdict", "value", "threshold", "floor mean±sd (q)", "margin", "from")
    body = []
    for r in results:
        floor = "-" if r.floor is None else f"{_fmt(r.floor.mean)}±{_fmt(r.floor.sd)} ({_fmt(r.floor.quantile)})"
        if r.floor is None and r.gate.has_floor:
            floor = "n/a"
        margin = "n/a" if r.margin is None else f"{100 * r.margin:+.0f}%"
        body.append((for_terminal(r.class_name), r.gate.name, _verdict(r), _fmt(r.value),
                     f"{'>=' if r.gate.higher_is_better else '<='} {_fmt(r.threshold)}", floor, margin, _rule(r.gate)))
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (header, *body))


def smallest_margin(results: list[GateResult]) -> GateResult | None:
    """The evaluated gate with the least headroom (the closest call)."""
    evaluated = [r for r in results if r.margin is not None]
    return min(evaluated, key=lambda r: r.margin) if evaluated else None


class QaGateFailed(GateFailed):
    """One or more QA gates failed while qa.enforce is true; the message is the verdict table."""

    def __init__(self, results: list[GateResult], report_dir: str) -> None:
        failed = [r for r in results if r.failed]
        classes = sorted({r.class_name for r in failed})
        super().__init__(
            f"QA gates failed for {len(classes)} class(es) ({len(failed)} gate(s)); all figures are in "
            f"{report_dir}/metrics.json. Set qa.enforce: false to report without failing.\n"
            + verdict_table(failed))
