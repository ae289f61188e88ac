"""Every QA metric in one table: its name, what it computes per class, whether its figures are
drawn ``qa.draws`` times beside a real-vs-real floor, and the gates that judge them.

``qa/run.py`` computes the metrics in this order, the gates (``qa/gates.py``) judge what they
computed, and the package database, the report and the summary list the gates from here. A gate
names its ``qa.*`` settings as :class:`Setting`\\ s, checked against :class:`QaParams` when this
module loads, so a renamed param fails at import, not at the first QA run. The computations
register themselves with :func:`computes` (``qa/evaluate.py``), which keeps this module free of
numpy and torch: the report and the summary import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from histosynth.config.qa import QaParams


@dataclass(frozen=True)
class Setting:
    """A number under ``qa.*``, by its dotted path (``"kl.max"``)."""

    path: str

    def __post_init__(self) -> None:
        model: type[BaseModel] = QaParams
        *sections, name = self.path.split(".")
        for section in sections:
            field = model.model_fields.get(section)
            if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
                raise TypeError(f"qa.{self.path}: qa has no section {section!r}")
            model = field.annotation
        field = model.model_fields.get(name)
        if field is None or field.annotation not in (int, float):
            raise TypeError(f"qa.{self.path}: not a number in QaParams")

    def read(self, params: QaParams) -> float:
        value: Any = params
        for part in self.path.split("."):
            value = getattr(value, part)
        return float(value)

    def __str__(self) -> str:
        return f"qa.{self.path}"


@dataclass(frozen=True)
class Gate:
    name: str
    metric: str  # key in a class's figures; its floor is "<metric>_real_floor" (+ _sd, _q_low, _q_high)
    higher_is_better: bool
    limit: Setting | None  # the absolute limit
    floor_factor: Setting | None = None  # the tolerance over the floor's bad-side quantile
    # True: the limit is relaxed to the floor's bad-side quantile instead of tightening it.
    relax_to_floor: bool = False
    title: str = ""  # the report's name for it
    explanation: str = ""  # what it checks, in words for the people who judge the images

    @property
    def has_floor(self) -> bool:
        return self.floor_factor is not None or self.relax_to_floor


@dataclass(frozen=True)
class QaMetric:
    name: str
    title: str  # in logs and timings
    drawn: bool  # computed qa.draws times, beside a real-vs-real floor
    gates: tuple[Gate, ...]


METRICS: tuple[QaMetric, ...] = (
    QaMetric("colour_kl", "colour KL", True, (
        Gate("colour_kl", "kl", False, Setting("kl.max"), Setting("kl.floor_factor"), title="Colour match",
             explanation="KL divergence between the red, green and blue intensity histograms of real and synthetic "
                         "tiles: do the synthetic tiles have the stain colours of the real ones? Lower is better."),
    )),
    QaMetric("feature_figures", "FID and coverage", True, (
        Gate("fid", "fid", False, None, Setting("fid.floor_factor"), title="Overall resemblance (FID)",
             explanation="Fréchet distance between real and synthetic tiles as seen by a classifier trained on the "
                         "real tiles: do they look alike to a network that knows this tissue? Lower is better; only "
                         "its ratio to the real-vs-real floor means something."),
        Gate("coverage", "coverage", True, Setting("diversity.min_coverage"), Setting("diversity.floor_factor"),
             title="Variety (coverage)",
             explanation="Share of real tiles that have a synthetic tile close by in feature space: do the synthetic "
                         "tiles cover the variety of the class, or only a few of its looks (mode collapse)? "
                         "Higher is better."),
    )),
    QaMetric("label_agreement", "label consistency", True, (
        Gate("label_consistency", "label_agreement", True, Setting("label.min_agreement"),
             Setting("label.floor_factor"), title="Right class",
             explanation="Share of synthetic tiles that the real-trained classifier puts in the class they were "
                         "generated for: does the generator draw the class it was asked for? Higher is better."),
    )),
    QaMetric("duplicates", "duplicates", False, (
        Gate("duplicates", "duplicate_share", False, Setting("diversity.max_duplicate_share"), title="Duplicates",
             explanation="Share of synthetic tiles that are pixel-identical to another one. Should be 0."),
    )),
    QaMetric("memorisation", "memorisation", True, (
        Gate("memorisation_pixel", "memorised_share_pixel", False, Setting("memorisation.max_share"),
             relax_to_floor=True, title="Near-copies (pixels)",
             explanation="Share of synthetic tiles that sit, pixel by pixel, unusually close to one particular "
                         "training tile (much closer to it than to any other, more so than almost any new real "
                         "tile): a generator must not reproduce (patient) training images. Lower is better."),
        Gate("memorisation_feature", "memorised_share_feature", False, Setting("memorisation.max_share"),
             relax_to_floor=True, title="Near-copies (features)",
             explanation="The same near-copy check in the classifier's feature space, which also catches shifted "
                         "or recoloured copies. Lower is better."),
    )),
)

# The order the verdict table, metrics.json, the report and the summary list the gates in: how the
# images look (colour, overall), then what they show (class, variety), then copies.
GATE_ORDER = ("colour_kl", "fid", "label_consistency", "coverage", "duplicates", "memorisation_pixel",
              "memorisation_feature")
GATES: tuple[Gate, ...] = tuple(sorted((gate for metric in METRICS for gate in metric.gates),
                                       key=lambda gate: GATE_ORDER.index(gate.name)))

_COMPUTATIONS: dict[str, Callable[..., Any]] = {}


def computes(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as metric ``name``'s computation."""
    if name not in {metric.name for metric in METRICS}:
        raise KeyError(f"no QA metric {name!r} in histosynth.qa.registry.METRICS")

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _COMPUTATIONS[name] = function
        return function

    return register


def computation(metric: QaMetric) -> Callable[..., Any]:
    """The registered computation of ``metric`` (``qa/evaluate.py`` must be imported first)."""
    try:
        return _COMPUTATIONS[metric.name]
    except KeyError:
        raise LookupError(f"QA metric {metric.name!r} has no registered computation; import histosynth.qa.evaluate")
