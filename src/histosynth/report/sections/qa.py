"""The QA section: every gate's figure, threshold and real-vs-real floor per class, and the verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from histosynth import paths
from histosynth.qa.floors import floor_keys
from histosynth.qa.registry import GATES, Gate
from histosynth.report.inputs import Missing, read_json
from histosynth.report.schemas import QaMetrics, number_or_none

FLOOR_TEXT = ("The floor is the same figure measured between two disjoint sets of real tiles, drawn again and "
              "again: what a perfect generator would score with these sample sizes, and how much that varies. "
              "A limit is a multiple of the floor's unlucky end (its 95th percentile), tightened by a fixed "
              "absolute limit (qa.* in params.yaml), so real tiles pass and a verdict does not hinge on one draw.")


@dataclass(frozen=True)
class GateCell:
    value: float | None
    threshold: float | None
    floor: float | None
    passed: bool | None  # None: not evaluated

    @property
    def status(self) -> str:
        """The cell's style: pass, fail or na (not evaluated)."""
        return {True: "pass", False: "fail", None: "na"}[self.passed]


@dataclass(frozen=True)
class GateRow:
    name: str
    title: str
    explanation: str
    comparison: str  # how the value must relate to the threshold: "≤" or "≥"
    has_floor: bool
    cells: list[GateCell]  # one per class, in QaView.classes order


CAS_TEXT = ("Classification accuracy score: a small classifier trained on the synthetic tiles alone, and the same "
            "recipe trained on the real train tiles alone, each scored on the real val tiles it never saw. "
            "The closer the first comes to the second, the more of the classes the generator has learned; "
            "it is reported, not gated.")


@dataclass(frozen=True)
class CasRow:
    name: str  # a class, or "all classes"
    synthetic_only: float | None
    real_only: float | None
    n_val: int | None


@dataclass(frozen=True)
class CasView:
    rows: list[CasRow]  # all classes first, then one per class
    steps: int | None
    text: str = CAS_TEXT


@dataclass(frozen=True)
class QaView:
    passed: bool
    failed_gates: int
    classes: list[str]
    class_passed: list[bool]
    rows: list[GateRow]
    overall_fid: tuple[float, float | None] | None  # (FID, real-vs-real floor) over all classes
    featurenet_accuracy: float | None
    cas: CasView | None = None
    floor_text: str = FLOOR_TEXT


_GATE_OF = {gate.name: gate for gate in GATES}


def gate_title(name: str) -> str:
    return _GATE_OF[name].title if name in _GATE_OF else name


def load_qa_metrics(root: Path) -> QaMetrics | None:
    return read_json(root / paths.QA_REPORT_DIR / "metrics.json", QaMetrics)


def qa_section(metrics: QaMetrics | None) -> QaView | Missing:
    if metrics is None:
        return Missing("qa")
    classes = list(metrics.classes)
    rows = [_gate_row(gate, metrics) for gate in GATES
            if any(gate.name in figures.gates for figures in metrics.classes.values())]
    fid = number_or_none(metrics.fid.get("fid"))
    return QaView(
        passed=metrics.passed,
        failed_gates=sum(cell.passed is False for row in rows for cell in row.cells),
        classes=classes,
        class_passed=[metrics.classes[name].passed for name in classes],
        rows=rows,
        overall_fid=None if fid is None else (fid, number_or_none(metrics.fid.get("fid_real_floor"))),
        featurenet_accuracy=number_or_none(metrics.featurenet.get("real_val_accuracy")),
        cas=_cas_view(metrics.cas),
    )


def _cas_view(cas: dict | None) -> CasView | None:
    if not cas:
        return None
    rows = [CasRow("all classes", number_or_none(cas.get("synthetic_only")), number_or_none(cas.get("real_only")),
                   cas.get("n_val"))]
    rows += [CasRow(name, number_or_none(v.get("synthetic_only")), number_or_none(v.get("real_only")), v.get("n_val"))
             for name, v in (cas.get("per_class") or {}).items()]
    return CasView(rows, cas.get("steps"))


def _gate_row(gate: Gate, metrics: QaMetrics) -> GateRow:
    title, explanation = gate.title, gate.explanation
    cells = []
    for figures in metrics.classes.values():
        verdict = figures.gates.get(gate.name)
        cells.append(GateCell(value=figures.figure(gate.metric),
                              threshold=verdict.threshold if verdict else None,
                              floor=figures.figure(floor_keys(gate.metric)[0]) if gate.has_floor else None,
                              passed=verdict.passed if verdict else None))
    return GateRow(gate.name, title, explanation, "≥" if gate.higher_is_better else "≤",
                   gate.has_floor, cells)
