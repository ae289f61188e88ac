"""The classification accuracy score: a classifier trained on synthetic images only, scored on real val."""

from __future__ import annotations

import numpy as np

from conftest import write_image_folder
from histosynth.config import params_from_mapping
from histosynth.dataset import ImageSet, load_image_set
from histosynth.qa.cas import classification_accuracy_score
from histosynth.report.schemas import QaMetrics
from histosynth.report.sections.qa import qa_section

STEPS = 60


def sets(tmp_path):
    real = write_image_folder(tmp_path / "real", {"train": 30, "val": 20})
    return load_image_set(real, "train"), load_image_set(real, "val")


def score(train, synthetic, val, steps=STEPS, workers=1):
    qa = params_from_mapping({"qa": {"cas": {"steps": steps}}}).qa
    # in this process: the two-worker path (the qa stage's) is run by tests/test_qa_gates.py's stage test
    return classification_accuracy_score(qa.cas, qa.featurenet, train, synthetic, val, workers=workers)


def test_synthetic_copies_of_real_score_as_real_and_wrong_labels_score_low(tmp_path):
    train, val = sets(tmp_path)
    same = score(train, train, val)
    assert same["synthetic_only"] == same["real_only"] > 0.9 and same["gap"] == 0
    assert same["steps"] == STEPS and same["n_val"] == len(val) and same["scored_on"] == "real val"
    assert set(same["per_class"]) == set(val.class_names)
    assert all(v["n_val"] == 20 and v["synthetic_only"] == v["real_only"] for v in same["per_class"].values())
    # every class drawn as the next one: a classifier learns the wrong names, whatever the images look like
    shifted = ImageSet(train.images, (train.labels + 1) % 3, train.class_names)
    wrong = score(train, shifted, val)
    assert wrong["real_only"] == same["real_only"]  # same recipe, seed and steps: the real arm does not move
    assert wrong["synthetic_only"] < 0.1 and wrong["gap"] > 0.8


def test_one_missing_class_costs_that_class_only(tmp_path):
    train, val = sets(tmp_path)
    keep = train.labels != 2
    partial = score(train, ImageSet(train.images[keep], train.labels[keep], train.class_names), val)
    per_class = partial["per_class"]
    missing = val.class_names[2]
    assert per_class[missing]["synthetic_only"] == 0.0 and per_class[missing]["real_only"] > 0.9
    assert all(v["synthetic_only"] > 0.9 for name, v in per_class.items() if name != missing)
    assert np.isclose(partial["balanced_accuracy"]["synthetic_only"],
                      np.mean([v["synthetic_only"] for v in per_class.values()]))


def test_report_shows_the_score_beside_the_gates():
    metrics = QaMetrics.model_validate({
        "passed": True, "classes": {},
        "cas": {"synthetic_only": 0.81, "real_only": 0.9, "steps": 400, "n_val": 10,
                "per_class": {"a": {"synthetic_only": 0.7, "real_only": 0.8, "n_val": 5}}}})
    view = qa_section(metrics)
    assert [(r.name, r.synthetic_only, r.real_only, r.n_val) for r in view.cas.rows] == [
        ("all classes", 0.81, 0.9, 10), ("a", 0.7, 0.8, 5)]
    assert qa_section(QaMetrics.model_validate({"passed": True, "classes": {}})).cas is None
