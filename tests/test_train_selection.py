"""Choosing the generator among a run's checkpoints by their colours against real train (gan.select), over all
samples (train_colour) or over those curation's tests accept (curated_colour)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import write_image_folder
from test_train import gan_params, read_tsv, run
from torch import nn

from histosynth.classifier.featurenet import train_featurenet
from histosynth.colour_histograms import colour_histograms, kl_per_channel
from histosynth.config.classifier import FeaturenetParams
from histosynth.config.curate import CurateParams
from histosynth.curate.acceptance import CandidateTests
from histosynth.dataset import load_image_set
from histosynth.errors import ConfigError, DataError
from histosynth.generators.gan.train import train
from histosynth.generators.training import checkpoint
from histosynth.generators.training.selection import (
    BINS, SMOOTHING, SURPLUS, CheckpointChoice, colour_kl_of, colour_reference, first_candidate,
)
from histosynth.manifest import read_manifest, write_manifest

SELECT = {"by": "train_colour", "window": 1.0, "every": 1, "n_per_class": 10}


class FlatColours(nn.Module):
    """A stand-in generator whose class c paints every pixel ``colours[c]`` (in [-1, 1]); ``bias`` is its weight."""

    def __init__(self, colours: list[tuple[float, float, float]]) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(colours, dtype=torch.float32))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bias[y][:, :, None, None].expand(len(y), 3, 8, 8)


def test_candidates_are_every_nth_epoch_of_the_window_and_the_last():
    choice = CheckpointChoice("train_colour", window=0.5, every=10, epochs=150)
    assert first_candidate(150, 0.5) == 76
    assert [e for e in range(1, 151) if choice.is_candidate(e)] == list(range(80, 151, 10))
    assert [e for e in range(1, 8) if CheckpointChoice("last", 1.0, 3, 7).is_candidate(e)] == [3, 6, 7]


def test_the_checkpoint_with_the_lowest_worst_class_is_kept_and_the_earliest_of_equals():
    choice = CheckpointChoice("train_colour", window=1.0, every=1, epochs=4)
    generator = FlatColours([(0.0, 0.0, 0.0)])
    for epoch, kl, weight in [(1, [0.3, 0.1], 1.0), (2, [0.05, 0.2], 2.0), (3, [0.2, 0.1], 3.0),
                              (4, [0.1, 0.2], 4.0)]:
        generator.bias.data.fill_(weight)
        choice.offer(epoch, np.array(kl), generator)
    # worst classes 0.3, 0.2, 0.2, 0.2: epoch 2 is the first of the lowest
    assert choice.chosen(4) == (2, 0.2)
    assert torch.equal(choice.best_weights["bias"], torch.full((1, 3), 2.0))
    generator.bias.data.fill_(9.0)  # later training must not change the kept copy
    assert choice.best_weights["bias"][0, 0] == 2.0

    last = CheckpointChoice("last", window=1.0, every=1, epochs=2)
    last.offer(1, np.array([0.0]), generator)
    last.offer(2, np.array([0.5]), generator)
    assert last.chosen(2) == (2, 0.5) and last.best_weights is None  # recorded, never chosen


def test_a_resumed_choice_continues_only_when_the_longer_run_would_keep_the_same_weights():
    choice = CheckpointChoice("train_colour", window=0.5, every=10, epochs=100)
    generator = FlatColours([(0.0, 0.0, 0.0)])
    for epoch, worst in [(60, 0.1), (70, 0.3), (80, 0.2), (90, 0.4), (100, 0.5)]:
        choice.offer(epoch, np.array([worst]), generator)
    state = choice.state_dict()
    assert choice.chosen(100) == (60, 0.1)

    same = CheckpointChoice("train_colour", window=0.5, every=10, epochs=100)
    assert same.load_state_dict(state) and same.chosen(100) == (60, 0.1)
    # 120 epochs: candidates from 61 on; the best of 70..100 (80) was not kept, so the run must start over
    assert not CheckpointChoice("train_colour", window=0.5, every=10, epochs=120).load_state_dict(state)
    # 300 epochs: no earlier epoch is a candidate, nothing is lost
    longer = CheckpointChoice("train_colour", window=0.5, every=10, epochs=300)
    assert longer.load_state_dict(state) and longer.scores == [] and longer.best_weights is None


def test_colour_kl_is_near_zero_for_the_right_colours_and_large_for_wrong_ones():
    red, blue = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    reference = np.stack([colour_histograms(red, BINS), colour_histograms(blue, BINS)])
    args = dict(n_per_class=5, latent_dim=2, seed=0, device=torch.device("cpu"))
    right = colour_kl_of(FlatColours([(1, -1, -1), (-1, -1, 1)]), reference, **args)
    swapped = colour_kl_of(FlatColours([(-1, -1, 1), (1, -1, -1)]), reference, **args)
    assert right.shape == (2,) and np.all(right < 0.01)
    assert np.all(swapped > 1.0)
    expected = kl_per_channel(reference[0], colour_histograms(blue[:1].repeat(5, 0), BINS), SMOOTHING).mean()
    assert swapped[0] == pytest.approx(expected)


def test_training_records_each_candidates_colours_and_ships_the_chosen_epoch(tmp_path, tiny_real_dir):
    record, model_dir, report_dir = run(tmp_path, tiny_real_dir, name="chosen", epochs=4, select=SELECT)
    rows = read_tsv(report_dir / "colour.tsv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    worst = [float(r["worst"]) for r in rows]
    assert worst == [max(float(r[c]) for c in record["class_names"]) for r in rows]
    best = 1 + int(np.argmin(worst))
    assert record["selected_epoch"] == best and record["epoch"] == 4
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["selected_epoch"] == best and metrics["selected_colour_kl"] == min(worst)

    # the shipped weights are those a run stopped at that epoch ends with
    _, stopped, _ = run(tmp_path, tiny_real_dir, name="stopped", epochs=best, select={**SELECT, "by": "last"})
    shipped = torch.load(model_dir / checkpoint.GENERATOR_FILE, weights_only=True)
    reference = torch.load(stopped / checkpoint.GENERATOR_FILE, weights_only=True)
    assert shipped.keys() == reference.keys() and all(torch.equal(shipped[k], reference[k]) for k in shipped)
    # and the colours it was chosen by are those of the real train split, class by class
    real_train = load_image_set(tiny_real_dir, split="train")
    assert np.array_equal(colour_reference(real_train, tuple(record["class_names"])),
                          np.stack([colour_histograms(real_train.of_class(c), BINS) for c in range(3)]))


def test_last_keeps_the_last_weights_and_its_record_as_before(tmp_path, tiny_real_dir):
    record, model_dir, report_dir = run(tmp_path, tiny_real_dir, name="last", epochs=3,
                                        select={**SELECT, "by": "last"})
    assert "selected_epoch" not in record and not any(k.startswith("select") for k in record["params"])
    assert read_tsv(report_dir / "colour.tsv") == []  # nothing scored
    assert json.loads((report_dir / "metrics.json").read_text())["selected_epoch"] == 3


def test_an_interrupted_run_chooses_what_an_uninterrupted_one_does(tmp_path, tiny_real_dir):
    _, straight, straight_reports = run(tmp_path, tiny_real_dir, name="straight", epochs=4, select=SELECT)
    run(tmp_path, tiny_real_dir, name="resumed", epochs=2, select=SELECT)
    _, resumed, resumed_reports = run(tmp_path, tiny_real_dir, name="resumed", epochs=4, select=SELECT)
    assert (straight / checkpoint.GENERATOR_FILE).read_bytes() == (resumed / checkpoint.GENERATOR_FILE).read_bytes()
    assert (straight_reports / "colour.tsv").read_text() == (resumed_reports / "colour.tsv").read_text()


def test_choosing_by_colour_needs_real_train_images_of_every_class(tmp_path):
    augmented = write_image_folder(tmp_path / "augmented", {"train": 24})
    real = write_image_folder(tmp_path / "real", {"train": 24, "val": 8})
    manifest = read_manifest(real)
    write_manifest(manifest[(manifest["split"] != "train") | (manifest["label"] != 1)], real)
    params = gan_params(train_on="augmented", select=SELECT)
    with pytest.raises(DataError, match=r"no real train images of class\(es\) green stripes: .*gan.select.by: last"):
        train(params, augmented, real, tmp_path / "model", tmp_path / "reports")


def test_with_augmented_training_images_the_colours_are_still_the_real_train_images(tmp_path, tiny_real_dir):
    augmented = write_image_folder(tmp_path / "augmented", {"train": 24}, seed=5)
    report_dir = tmp_path / "reports"
    train(gan_params(train_on="augmented", epochs=1, select=SELECT), augmented, tiny_real_dir, tmp_path / "model",
          report_dir)
    from_real = read_tsv(report_dir / "colour.tsv")
    train(gan_params(train_on="augmented", epochs=1, select=SELECT), augmented, augmented, tmp_path / "model2",
          tmp_path / "reports2")
    assert from_real != read_tsv(tmp_path / "reports2" / "colour.tsv")  # other reference, other figures


class TwoShades(nn.Module):
    """Class c paints ``right[c]`` where the first noise value is positive, ``wrong[c]`` elsewhere."""

    def __init__(self, right: list[tuple[float, float, float]], wrong: list[tuple[float, float, float]]) -> None:
        super().__init__()
        self.right = nn.Parameter(torch.tensor(right, dtype=torch.float32))
        self.wrong = nn.Parameter(torch.tensor(wrong, dtype=torch.float32))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        colour = torch.where(z[:, :1] > 0, self.right[y], self.wrong[y])
        return colour[:, :, None, None].expand(len(y), 3, 8, 8)


class RedOnly:
    """A sample filter that accepts the images whose red channel is lit (as curation accepts the recognisable)."""

    identity = "red-only"

    def __init__(self) -> None:
        self.seen = 0

    def accepts(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        self.seen += len(images)
        return images[..., 0].mean(axis=(1, 2)) > 127


def test_curated_colour_scores_only_what_the_filter_accepts_from_surplus_draws():
    red = np.zeros((4, 8, 8, 3), np.uint8)
    red[..., 0] = 255
    reference = np.stack([colour_histograms(red, BINS)])
    generator = TwoShades([(1, -1, -1)], [(-1, -1, 1)])  # half red (right), half blue
    args = dict(n_per_class=20, latent_dim=2, seed=0, device=torch.device("cpu"))
    unfiltered = colour_kl_of(generator, reference, **args)
    sample_filter = RedOnly()
    filtered = colour_kl_of(generator, reference, **args, sample_filter=sample_filter)
    assert sample_filter.seen == SURPLUS * 20  # drawn SURPLUS times over
    # scored: the first 20 red ones, as if only red had been drawn; the blue half is what curation would drop
    expected = kl_per_channel(reference[0], colour_histograms(red[:1].repeat(20, 0), BINS), SMOOTHING).mean()
    assert filtered[0] == pytest.approx(expected) and unfiltered[0] > 3 * filtered[0]


def test_curated_colour_falls_back_to_all_samples_when_too_few_pass(caplog):
    blue = np.zeros((4, 8, 8, 3), np.uint8)
    blue[..., 2] = 255
    reference = np.stack([colour_histograms(blue, BINS)])
    always_blue = TwoShades([(-1, -1, 1)], [(-1, -1, 1)])
    kl = colour_kl_of(always_blue, reference, n_per_class=20, latent_dim=2, seed=0, device=torch.device("cpu"),
                      sample_filter=RedOnly())
    expected = kl_per_channel(reference[0], colour_histograms(blue[:1].repeat(20, 0), BINS), SMOOTHING).mean()
    assert kl[0] == pytest.approx(expected)
    assert "0 of 60 samples pass curation's tests; scoring the first 20 as drawn" in caplog.text


@pytest.fixture(scope="module")
def curation_tests(tmp_path_factory):
    """Curation's real tests: the cross-fitted feature nets of a small real set and curate's defaults."""
    root = tmp_path_factory.mktemp("curated_colour")
    real = write_image_folder(root / "real", {"train": 48, "val": 24, "test": 4})
    train_featurenet(FeaturenetParams(epochs=3, folds=2), real, root / "featurenet")
    return real, CandidateTests.of(CurateParams(), real, root / "featurenet")


def test_curated_colour_trains_through_curations_tests_and_is_its_own_run(tmp_path, curation_tests):
    real, tests = curation_tests
    select = {**SELECT, "by": "curated_colour", "n_per_class": 12}
    with pytest.raises(ConfigError, match="curated_colour .* needs curation's tests"):
        train(gan_params(epochs=2, select=select), real, real, tmp_path / "none", tmp_path / "none_reports")
    record = train(gan_params(epochs=2, select=select), real, real, tmp_path / "model", tmp_path / "reports", tests)
    rows = read_tsv(tmp_path / "reports" / "colour.tsv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert record["selected_epoch"] == 1 + int(np.argmin([float(r["worst"]) for r in rows]))
    by_train = train(gan_params(epochs=2, select=SELECT), real, real, tmp_path / "train_colour",
                     tmp_path / "train_colour_reports")
    assert record["fingerprint"] != by_train["fingerprint"]  # scored another way: a checkpoint of one is not the other's
    assert read_tsv(tmp_path / "train_colour_reports" / "colour.tsv") != rows
