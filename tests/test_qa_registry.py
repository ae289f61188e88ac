"""The QA metric registry: every metric computed, every gate's settings real numbers under qa.*."""

from __future__ import annotations

import pytest

import histosynth.qa.evaluate  # noqa: F401  (registers the computations)
from histosynth.config.qa import QaParams
from histosynth.qa.registry import GATE_ORDER, GATES, METRICS, Setting, computation, computes


def test_every_metric_has_its_computation_and_every_gate_one_metric() -> None:
    assert all(callable(computation(metric)) for metric in METRICS)
    names = [gate.name for gate in GATES]
    assert len(names) == len(set(names)) == sum(len(metric.gates) for metric in METRICS)
    assert tuple(names) == GATE_ORDER


def test_a_computation_for_an_unknown_metric_is_refused() -> None:
    with pytest.raises(KeyError, match="no QA metric 'sharpness'"):
        computes("sharpness")


@pytest.mark.parametrize("path", ["kl.maximum", "kyle.max", "kl", "featurenet", "cas.enabled"])
def test_a_setting_must_name_a_number_under_qa(path: str) -> None:
    with pytest.raises(TypeError, match=f"qa.{path}"):
        Setting(path)


def test_settings_read_the_params_they_name() -> None:
    params = QaParams.model_validate({"kl": {"max": 0.25}, "diversity": {"k": 7}})
    assert Setting("kl.max").read(params) == 0.25
    assert Setting("diversity.k").read(params) == 7.0
    assert str(Setting("memorisation.max_share")) == "qa.memorisation.max_share"
    for gate in GATES:  # every gate's settings read a value from the defaults
        for setting in (gate.limit, gate.floor_factor):
            assert setting is None or isinstance(setting.read(QaParams()), float)
