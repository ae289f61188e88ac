"""The small CNN, its training recipe, its checkpoints and the `featurenet` stage function."""

import json

import numpy as np
import pytest
import torch

from conftest import write_image_folder
from histosynth.classifier.checkpoint import WEIGHTS_FILE, load_classifier, save_classifier
from histosynth.classifier.embed import embed, predict_proba
from histosynth.classifier.featurenet import train_featurenet
from histosynth.classifier.model import SmallCNN, downsamplings, to_input
from histosynth.classifier.crossfit import load_fold_models, load_out_of_fold, out_of_fold_probabilities, stratified_folds
from histosynth.classifier.train import Phase, Schedule, Stream, batch_counts, random_dihedral, train_classifier
from histosynth.config.classifier import ClassifierRecipe, FeaturenetParams
from histosynth.dataset import load_image_set
from histosynth.errors import DataError
from histosynth.manifest import read_manifest

FAST = ClassifierRecipe(epochs=6, patience=3)


@pytest.mark.parametrize("size, expected", [(28, 2), (32, 2), (64, 3), (128, 4), (224, 5)])
def test_every_image_size_pools_down_to_at_most_8_pixels(size, expected):
    assert downsamplings(size) == expected
    model = SmallCNN(n_classes=4, image_size=size, width=4).eval()
    images = np.zeros((2, size, size, 3), np.uint8)
    assert model(to_input(images)).shape == (2, 4)
    assert model.features(to_input(images)).shape == (2, model.feature_dim) == (2, 16)


def test_input_scaling_matches_the_gan_pixel_convention():
    x = to_input(np.array([[[[0, 127, 255]]]], np.uint8))
    assert x.shape == (1, 3, 1, 1)
    assert x.flatten().tolist() == pytest.approx([-1.0, 127 / 127.5 - 1, 1.0])


def test_dihedral_augmentation_only_rearranges_pixels():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = random_dihedral(x, torch.Generator().manual_seed(0))
    for before, after in zip(x, out):
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values)


def test_training_learns_the_classes_and_is_deterministic(tiny_real_dir):
    train, val, test = (load_image_set(tiny_real_dir, s) for s in ("train", "val", "test"))
    first = train_classifier(train, val, FAST)
    second = train_classifier(train, val, FAST)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    predictions = embed(first.model, test.images).predictions
    assert np.mean(predictions == test.labels) >= 0.9
    assert first.best_step in {h.step for h in first.history} and len(first.history) <= FAST.epochs


def test_batches_mix_streams_in_their_shares():
    assert batch_counts([0.75, 0.25], 64) == [48, 16]
    assert batch_counts([1, 1, 1], 64) == [22, 21, 21] and sum(batch_counts([0.3, 0.7], 7)) == 7
    assert batch_counts([1.0, 0.0], 8) == [8, 0]


def test_a_schedule_runs_its_steps_and_weights_a_stream(tiny_real_dir):
    """Equal steps whatever the data size; a zero-weight stream changes the weights not at all
    only through its gradient (its images still fill the batch, so BatchNorm sees them)."""
    train, val = (load_image_set(tiny_real_dir, s) for s in ("train", "val"))
    recipe = ClassifierRecipe(seed=3, dihedral_augment=False)
    mixed = Schedule((Phase(10, (Stream(train, 0.5), Stream(train, 0.5, weight=2.0))),), eval_every=4)
    trained = train_classifier(mixed, val, recipe)
    assert [h.step for h in trained.history] == [4, 8, 10]
    two_phase = Schedule((Phase(3, (Stream(train),)), Phase(5, (Stream(val),))), eval_every=100)
    assert [h.step for h in train_classifier(two_phase, None, recipe).history] == [8]
    plain = train_classifier(Schedule((Phase(10, (Stream(train),)),), eval_every=4), val, recipe)
    assert any(not torch.equal(a, b) for a, b in zip(trained.model.state_dict().values(),
                                                       plain.model.state_dict().values()))


def test_another_seed_gives_other_weights(tiny_real_dir):
    train = load_image_set(tiny_real_dir, "train")
    a = train_classifier(train, None, ClassifierRecipe(epochs=1, seed=0)).model.state_dict()
    b = train_classifier(train, None, ClassifierRecipe(epochs=1, seed=1)).model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_tensors_only_and_load_back(tmp_path):
    model = SmallCNN(3, 32, 8).eval()
    save_classifier(model, {"note": "x"}, tmp_path)
    torch.load(tmp_path / WEIGHTS_FILE, weights_only=True)
    loaded, record = load_classifier(tmp_path)
    assert record["note"] == "x" and record["model"]["feature_dim"] == model.feature_dim
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(embed(model, images).logits, embed(loaded, images).logits)
    with pytest.raises(DataError, match="no trained classifier.*dvc repro featurenet"):
        load_classifier(tmp_path / "missing")


FEATURENET = FeaturenetParams(epochs=6, patience=3, folds=3)


def test_train_featurenet_writes_weights_record_and_reports(tiny_real_dir, tmp_path):
    record = train_featurenet(FEATURENET, tiny_real_dir, tmp_path / "featurenet", tmp_path / "report")
    saved = json.loads((tmp_path / "featurenet" / "record.json").read_text())
    assert saved["class_names"] == ["red blobs", "green stripes", "blue noise"]
    assert saved["val_accuracy"] == record["val_accuracy"] >= 0.9
    assert set(saved["val_recall"]) == set(saved["class_names"])
    assert saved["recipe"] == FEATURENET.model_dump() and saved["n_images"] == {"train": 72, "val": 24}  # never test
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["val_accuracy"] == record["val_accuracy"] and "test_accuracy" not in metrics
    history = (tmp_path / "report" / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,val_accuracy" and len(history) == 1 + record["epochs_run"]
    weights = (tmp_path / "featurenet" / WEIGHTS_FILE).read_bytes()
    # same params -> same bytes, also with the trainings spread over two worker processes (as the stage does)
    train_featurenet(FEATURENET, tiny_real_dir, tmp_path / "again", workers=2)
    assert (tmp_path / "again" / WEIGHTS_FILE).read_bytes() == weights
    for j in range(3):
        fold = f"folds/{j}/{WEIGHTS_FILE}"
        assert (tmp_path / "again" / fold).read_bytes() == (tmp_path / "featurenet" / fold).read_bytes()


def test_cross_fitted_classifiers_score_each_train_image_out_of_fold(tiny_real_dir, tmp_path):
    train_featurenet(FEATURENET.model_copy(update={"epochs": 20}), tiny_real_dir, tmp_path / "featurenet",
                     tmp_path / "report")
    table = load_out_of_fold(tmp_path / "featurenet")
    manifest = read_manifest(tiny_real_dir)
    assert table["id"].tolist() == manifest.loc[manifest["split"] == "train", "id"].tolist()
    assert table.groupby(["fold", "label"]).size().tolist() == [8] * 9  # 3 folds x 3 classes, stratified
    probabilities = out_of_fold_probabilities(table)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    models = load_fold_models(tmp_path / "featurenet")
    train = load_image_set(tiny_real_dir, "train")
    for j, model in enumerate(models):  # each row is the prediction of the model that left its fold out
        mine = (table["fold"] == j).to_numpy()
        np.testing.assert_array_equal(probabilities[mine], predict_proba(model, train.images[mine]))
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["out_of_fold_accuracy"] >= 0.6  # chance: 1/3
    assert np.array_equal(stratified_folds(train.labels, 3, 0), table["fold"].to_numpy())


def test_train_featurenet_refuses_an_empty_train_split(tmp_path):
    real = write_image_folder(tmp_path / "real", {"train": 0, "test": 2})
    with pytest.raises(DataError, match="train split is empty"):
        train_featurenet(FEATURENET, real, tmp_path / "out")
    assert not (tmp_path / "out").exists()
