"""The `qa` stage: figures for every class, the gates' verdict, and reports/qa/.

Images are decoded once into image stores and read from there a batch at a time, their features
computed once per image set; every metric reads them from there. All figures are written before the verdict: with ``qa.enforce`` a failed
gate then raises :class:`QaGateFailed`, whose message is the table of failures.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.classifier.checkpoint import load_classifier
from histosynth.classifier.crossfit import (
    load_fold_models, load_out_of_fold, out_of_fold_probabilities, unseen_source_probabilities,
)
from histosynth.classifier.embed import embed
from histosynth.config.qa import QaParams
from histosynth.errors import DataError
from histosynth.image_store import take
from histosynth.neutralise import Block
from histosynth.output_policy import check_outputs
from histosynth.qa import evaluate
from histosynth.qa.cas import classification_accuracy_score
from histosynth.qa.evaluate import FeatureSpace
from histosynth.qa.gates import GateResult, QaGateFailed, evaluate_gates, smallest_margin, verdict_table
from histosynth.qa.inputs import QaInputs, load_qa_inputs
from histosynth.qa.registry import METRICS, computation
from histosynth.qa.report import write_report
from histosynth.synthetic_set import SYNTHETIC_SET_KEY, synthetic_set_md5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QaResult:
    passed: bool
    metrics: dict[str, Any]  # what metrics.json holds
    gates: list[GateResult]
    timings: dict[str, float]  # seconds per step (not written: they differ run to run)


class _Timings(dict[str, float]):
    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self[name] = self.get(name, 0.0) + time.perf_counter() - start


def run_qa(params: QaParams, real_dir: Path, synthetic_dir: Path, featurenet_dir: Path, report_dir: Path,
           augmented_dir: Path | None = None) -> QaResult:
    """QA of ``synthetic_dir`` against the real train and val splits of ``real_dir`` (never test).

    ``augmented_dir``: the affine children of the real train images (data/augmented), searched by
    the memorisation gate too when present: a copy of a child is a copy of a patient's image.
    """
    check_outputs({"report folder": report_dir}, {"real images": real_dir, "synthetic images": synthetic_dir,
                                                  "feature net": featurenet_dir, "augmented images": augmented_dir})
    timings = _Timings()
    model, record = load_classifier(featurenet_dir)  # before the images: a missing net fails fast
    with timings.step("load images"):
        inputs = load_qa_inputs(real_dir, synthetic_dir, params.max_per_class, params.seed, augmented_dir)
    _check_featurenet(record, inputs, featurenet_dir)
    log.info("QA of %d synthetic images against %d real train (+%d affine children) and %d real val images, "
             "%d classes", len(inputs.synthetic), len(inputs.train), len(inputs.affine), len(inputs.val),
             len(inputs.class_names))

    with timings.step("features"):
        train, val, affine, synthetic = (
            embed(model, s.images.images, desc=f"{name} features") for name, s in
            (("train", inputs.train), ("val", inputs.val), ("affine", inputs.affine), ("synthetic", inputs.synthetic)))
        domain = FeatureSpace(train.features, val.features, affine.features, synthetic.features)
    context = evaluate.QaContext(inputs, params, domain, _out_of_fold_predictions(featurenet_dir, inputs),
                                 val.predictions, _synthetic_predictions(featurenet_dir, inputs, synthetic.predictions))
    computed: dict[str, evaluate.MetricFigures] = {}
    for metric in METRICS:
        with timings.step(metric.title):
            computed[metric.name] = computation(metric)(context)
    overall_fid = {key: value for part in computed.values() for key, value in part.overall.items()}
    tables = {name: rows for part in computed.values() for name, rows in part.tables.items()}
    if params.fid.inception_weights is not None:
        with timings.step("Inception FID"):
            overall_fid.update(_inception_fid(params.fid.inception_weights, inputs, params.seed))
    cas = None
    if params.cas.enabled:
        with timings.step("classification accuracy score"):
            cas = classification_accuracy_score(params.cas, params.featurenet, inputs.train.images,
                                                inputs.synthetic.images, inputs.val.images)

    figures = {inputs.class_names[c]: _class_counts(inputs, c) | {k: v for part in computed.values()
                                                                  for k, v in part.by_class[c].items()}
               for c in evaluate.checked_labels(inputs)}
    results = evaluate_gates(figures, params)
    passed = not any(r.failed for r in results)
    metrics = {**_assemble(passed, figures, results, overall_fid, record, inputs),
               **({"cas": cas} if cas is not None else {}),
               SYNTHETIC_SET_KEY: synthetic_set_md5(synthetic_dir)}
    with timings.step("write report"):
        write_report(report_dir, metrics, tables["histograms"], tables["memorisation"], inputs.class_names,
                     params.kl.bins)
    log.info("QA gates (margin: headroom left as a share of the threshold):\n%s", Block(verdict_table(results)))
    closest = smallest_margin(results)
    if closest is not None:
        log.info("closest call: %s %s, margin %+.0f%%", closest.class_name, closest.gate.name, 100 * closest.margin)
    if cas is not None:
        log.info("classification accuracy score on real val: synthetic only %.3f, real only %.3f (not gated)",
                 cas["synthetic_only"], cas["real_only"])
    log.info("QA time per step: %s", ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    if not passed:
        if params.enforce:
            raise QaGateFailed(results, str(report_dir))
        log.warning("QA gates failed (qa.enforce is false: reporting only)")
    return QaResult(passed, metrics, results, dict(timings))


def _check_featurenet(record: dict[str, Any], inputs: QaInputs, featurenet_dir: Path) -> None:
    if tuple(record["class_names"]) != inputs.class_names or record["model"]["image_size"] != inputs.image_size:
        raise DataError(f"{featurenet_dir}: the feature net was trained on other data (classes "
                        f"{record['class_names']}, {record['model']['image_size']} px) than the real images "
                        f"(classes {list(inputs.class_names)}, {inputs.image_size} px); retrain it "
                        "(`dvc repro featurenet` or `histosynth featurenet`)")


def _out_of_fold_predictions(featurenet_dir: Path, inputs: QaInputs) -> np.ndarray:
    """The cross-fitted classifiers' prediction for each real train image, in the order of ``inputs.train``."""
    table = load_out_of_fold(featurenet_dir).set_index("id")
    missing = set(inputs.train.ids) - set(table.index)
    if missing:
        raise DataError(f"{featurenet_dir}: no out-of-fold prediction for {len(missing)} real train image(s) "
                        f"(e.g. {sorted(missing)[0]}); retrain the feature net (`dvc repro featurenet`)")
    return out_of_fold_probabilities(table.loc[inputs.train.ids]).argmax(axis=1)


def _synthetic_predictions(featurenet_dir: Path, inputs: QaInputs, predictions: np.ndarray) -> np.ndarray:
    """The feature net's predictions of the synthetic images, except for edits of real train images: the
    cross-fitted classifier that never saw an edit's source predicts it (the feature net trained on it)."""
    sources = inputs.synthetic.originals
    edits = np.flatnonzero(sources != "") if sources is not None else np.zeros(0, int)
    if not len(edits):
        return predictions
    probabilities = unseen_source_probabilities(load_fold_models(featurenet_dir), load_out_of_fold(featurenet_dir),
                                                take(inputs.synthetic.images.images, edits), sources[edits])
    out = predictions.copy()
    out[edits] = probabilities.argmax(axis=1)
    return out


def _class_counts(inputs: QaInputs, c: int) -> dict[str, int]:
    return {f"n_{name}": int((s.images.labels == c).sum()) for name, s in
            (("real_train", inputs.train), ("real_val", inputs.val), ("affine", inputs.affine),
             ("synthetic", inputs.synthetic))}


# Inception FIDs are drawn fewer times: each costs seconds of 2048-d eigen-decomposition.
INCEPTION_DRAWS = 5


def _inception_fid(weights: Path, inputs: QaInputs, seed: int) -> dict[str, float]:
    """Overall Inception FID and floor. Not per class: 2048-d covariances need thousands of images
    per class to mean much."""
    from histosynth.qa.inception import inception_features, load_inception

    net = load_inception(weights)
    val, synthetic = (inception_features(net, s.images.images, desc=f"{name} inception") for name, s in
                      (("val", inputs.val), ("synthetic", inputs.synthetic)))
    return evaluate.overall_fid(val, inputs.val.images.labels, synthetic, seed, INCEPTION_DRAWS, key="inception_fid")


def _assemble(passed: bool, figures: dict[str, dict[str, Any]], results: list[GateResult],
              overall_fid: dict[str, float], record: dict[str, Any], inputs: QaInputs) -> dict[str, Any]:
    classes = {}
    for name, values in figures.items():
        own = [r for r in results if r.class_name == name]
        classes[name] = {**values, "passed": not any(r.failed for r in own),
                         "gates": {r.gate.name: r.as_json() for r in own}}
    closest = smallest_margin(results)
    return {
        "passed": passed,
        "failed_gates": sum(r.failed for r in results),
        "classes": classes,
        "fid": overall_fid,
        "smallest_margin": None if closest is None else {
            "class": closest.class_name, "gate": closest.gate.name, "margin": closest.margin},
        "featurenet": {"real_val_accuracy": record.get("val_accuracy"),
                       "feature_dim": record["model"]["feature_dim"]},
        "counts": {"real_train": len(inputs.train), "real_val": len(inputs.val), "affine": len(inputs.affine),
                   "synthetic": len(inputs.synthetic)},
    }
