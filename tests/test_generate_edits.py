"""Edits of real images by the diffusion model (generate.mode: edit) on real files: a tiny ddpm trained on
textured class images, the real feature net and its cross-fitted copies, curation and QA as the stages run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_image_folder
from histosynth.classifier.crossfit import ensemble_probabilities, load_fold_models, load_out_of_fold, \
    unseen_source_probabilities
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import params_from_mapping
from histosynth.config.classifier import FeaturenetParams
from histosynth.config.curate import CurateParams
from histosynth.config.generate import DiffusionSampling, EditParams, GenerateParams
from histosynth.curate import curate
from histosynth.dataset import load_image_set
from histosynth.entry import EXIT_CONFIG
from histosynth.errors import ConfigError
from histosynth.generate import generate, regenerate
from histosynth.generators import train
from histosynth.generators.gan.models import build_generator
from histosynth.generators.training.checkpoint import save_generator, write_record
from histosynth.images import encode_png, read_png_rgb
from histosynth.manifest import read_manifest, write_manifest
from histosynth.qa.run import run_qa

SIZE, TRAIN, STEPS = 28, 48, 10
REPORT_ONLY = params_from_mapping({"qa": {"enforce": False}}).qa
UNCURATED = CurateParams(enabled=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Real images (48 train, 16 val per class), a ddpm trained for one epoch, the cross-fitted classifiers."""
    root = tmp_path_factory.mktemp("edits")
    real = write_image_folder(root / "real", {"train": TRAIN, "val": 16}, size=SIZE)
    gan = params_from_mapping({"gan": dict(arch="ddpm", train_on="real", width=4, batch_size=16, epochs=1,
                                           checkpoint_every=1, probe={"every": 0}, threads=1)}).gan
    train(gan, real, real, root / "model", root / "train_report")
    train_featurenet(FeaturenetParams(epochs=20, patience=5, folds=3), real, root / "featurenet")
    return root


def edit_params(n_per_class: int, strength: float = 0.2, **more) -> GenerateParams:
    return GenerateParams(n_per_class=n_per_class, device="cpu", mode="edit", edit={"strength": strength},
                          diffusion={"steps": STEPS}, **more)


def test_each_train_image_is_edited_in_turn_and_each_edit_records_its_source(work, tmp_path):
    manifest = generate(edit_params(TRAIN + 4), work / "model", tmp_path / "edits", work / "real")
    real = read_manifest(work / "real")
    for label, rows in manifest.groupby("label"):
        train_ids = real.loc[(real["split"] == "train") & (real["label"] == label), "id"].tolist()
        assert rows["edit_of"].tolist() == train_ids + train_ids[:4]  # image i edits train image i mod 48
    assert (manifest["edit_strength"] == 0.2).all() and (manifest["steps"] == STEPS).all()
    assert read_manifest(tmp_path / "edits")["edit_of"].tolist() == manifest["edit_of"].tolist()

    again = generate(edit_params(5), work / "model", tmp_path / "again", work / "real")
    first = manifest.groupby("label").head(5).reset_index(drop=True)
    assert again["md5"].tolist() == first["md5"].tolist()  # seeded per image: a smaller run is a prefix
    row = manifest.iloc[TRAIN + 70]
    image = regenerate(work / "model", seed=0, label=int(row["label"]), index=int(row["latent_index"]),
                       sampling=DiffusionSampling(steps=STEPS), edit=EditParams(strength=0.2), real_dir=work / "real")
    assert encode_png(image) == (tmp_path / "edits" / row["path"]).read_bytes()
    source = read_png_rgb(work / "real" / real.set_index("id").loc[row["edit_of"], "path"])
    assert not np.array_equal(image, source)  # an edit, not its source

    sampled = generate(GenerateParams(n_per_class=2, device="cpu", diffusion={"steps": STEPS}), work / "model",
                       tmp_path / "samples")
    assert "edit_of" not in sampled.columns  # samples from noise: no source, manifest as before


def test_an_edit_keeps_its_class_under_the_cross_fitted_classifier_more_often_than_an_unconditional_sample(
        work, tmp_path):
    edits = generate(edit_params(24), work / "model", tmp_path / "edits", work / "real")
    generate(GenerateParams(n_per_class=24, device="cpu", diffusion={"steps": STEPS, "guidance": 0.0}),
             work / "model", tmp_path / "unconditional")
    models = load_fold_models(work / "featurenet")
    edited = load_image_set(tmp_path / "edits")
    unseen = unseen_source_probabilities(models, load_out_of_fold(work / "featurenet"), edited.images,
                                         edits["edit_of"].to_numpy(str))
    edit_agreement = float((unseen.argmax(1) == edited.labels).mean())
    sampled = load_image_set(tmp_path / "unconditional")
    sample_agreement = float((ensemble_probabilities(models, sampled.images).argmax(1) == sampled.labels).mean())
    val = load_image_set(work / "real", "val")
    assert (ensemble_probabilities(models, val.images).argmax(1) == val.labels).mean() >= 0.9  # a classifier that knows
    assert edit_agreement >= 0.9 and sample_agreement <= 0.6, (edit_agreement, sample_agreement)


def test_edits_pass_curation_and_qa_while_copies_named_as_edits_are_still_caught(work, tmp_path):
    candidates = tmp_path / "candidates"
    generate(edit_params(40), work / "model", candidates, work / "real")
    # curation scores every candidate but keeps the first 20 (the one-epoch model's edits are noisy)
    kept = curate(UNCURATED, 20, candidates, work / "real", None, work / "featurenet", tmp_path / "synthetic",
                  tmp_path / "curate_report")
    assert kept["edit_of"].notna().all() and len(kept) == 60
    scores = pd.read_csv(tmp_path / "curate_report" / "scores.csv")
    # no edit copies its source's pixels; in the feature space of this tiny feature net some edits of the
    # one-epoch model do count as copies, and enabled curation rejects them (near_copy, QA's feature test)
    assert not scores["near_copy_pixel"].any()
    assert scores["near_copy"].equals(scores["near_copy_pixel"] | scores["near_copy_feature"])
    qa = run_qa(REPORT_ONLY, work / "real", tmp_path / "synthetic", work / "featurenet", tmp_path / "qa")
    for figures in qa.metrics["classes"].values():
        assert figures["memorised_share_pixel"] <= 0.1 and figures["source_copy_share_pixel"] <= 0.1
        assert figures["gates"]["memorisation_pixel"]["passed"]
        assert figures["label_agreement"] >= 0.9  # each edit judged by the classifier that never saw its source
    table = pd.read_csv(tmp_path / "qa" / "memorisation.csv", keep_default_na=False)
    assert set(table.loc[table["source"] == "synthetic", "edit_of"]) <= set(kept["edit_of"])

    # The same manifest, but every image replaced by a verbatim copy of its source or of another train image.
    real = read_manifest(work / "real").set_index("id")
    copies = read_manifest(candidates)
    for rows, shift in ((copies.index % 2 == 0, 0), (copies.index % 2 == 1, 1)):
        for _, row in copies[rows].iterrows():
            train_ids = real.index[(real["split"] == "train") & (real["label"] == row["label"])]
            copied = train_ids[(list(train_ids).index(row["edit_of"]) + shift) % len(train_ids)]
            (candidates / row["path"]).write_bytes((work / "real" / real.loc[copied, "path"]).read_bytes())
    write_manifest(copies, candidates)
    curate(UNCURATED, 20, candidates, work / "real", None, work / "featurenet", tmp_path / "copies",
           tmp_path / "copies_report")
    scores = pd.read_csv(tmp_path / "copies_report" / "scores.csv")
    assert scores["near_copy"].all()
    qa = run_qa(REPORT_ONLY, work / "real", tmp_path / "copies", work / "featurenet", tmp_path / "qa_copies")
    for figures in qa.metrics["classes"].values():
        assert figures["memorised_share_pixel"] == 1.0 and not figures["gates"]["memorisation_pixel"]["passed"]
        assert 0.3 <= figures["source_copy_share_pixel"] <= 0.7  # half copy their own source, half another image


def test_edit_mode_with_a_gan_checkpoint_is_one_error_line(work, tmp_path):
    torch.manual_seed(0)
    generator = build_generator("dcgan", 3, SIZE, 16, 8)
    save_generator(tmp_path / "models" / "gan", generator.state_dict())
    write_record(tmp_path / "models" / "gan", {"arch": "dcgan", "n_classes": 3, "class_names": ["a", "b", "c"],
                                               "image_size": SIZE, "latent_dim": 16, "width": 8})
    (tmp_path / "params.yaml").write_text("generate:\n  n_per_class: 2\n  device: cpu\n  mode: edit\n")
    stage = Path(__file__).resolve().parents[1] / "stages" / "generate.py"
    done = subprocess.run([sys.executable, str(stage)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_CONFIG and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        "error: generate.mode is 'edit' but models/gan holds a dcgan GAN, which cannot edit images; train the "
        "diffusion model (gan.arch: ddpm) or set generate.mode: sample"]
    assert not (tmp_path / "data").exists()
    with pytest.raises(ConfigError, match="pass the real image folder"):
        generate(edit_params(2), work / "model", tmp_path / "out")


def test_cli_edit_options_reach_the_editor(work, tmp_path):
    from typer.testing import CliRunner

    from histosynth.cli import app

    (tmp_path / "params.yaml").write_text("generate:\n  n_per_class: 2\n  device: cpu\n  diffusion: {steps: 4}\n")
    args = ["generate", "--params", str(tmp_path / "params.yaml"), "--checkpoint", str(work / "model"),
            "--out", str(tmp_path / "out"), "--real", str(work / "real"), "--mode", "edit"]
    result = CliRunner().invoke(app, [*args, "--strength", "0.3"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "out")
    assert (manifest["edit_strength"] == 0.3).all() and manifest["edit_of"].notna().all()
    refused = CliRunner().invoke(app, [*args, "--strength", "0"])
    assert refused.exit_code == EXIT_CONFIG and "generate.edit.strength = 0.0: Input should be greater than 0" in refused.output
    model_colours = [*args[:-5], str(tmp_path / "model_colours"), *args[-4:], "--strength", "0.3", "--keep-colour", "none"]
    assert CliRunner().invoke(app, model_colours).exit_code == 0
    assert read_manifest(tmp_path / "model_colours")["md5"].tolist() != manifest["md5"].tolist()  # histogram by default
    unknown = CliRunner().invoke(app, [*args, "--keep-colour", "grey"])
    assert unknown.exit_code != 0 and "histogram" in unknown.output


def test_keep_colour_gives_each_edit_its_sources_colours(work, tmp_path):
    real = read_manifest(work / "real").set_index("id")
    drift, edits = {}, {}
    for keep in ("none", "moments", "histogram"):
        manifest = generate(GenerateParams(n_per_class=8, device="cpu", mode="edit", diffusion={"steps": STEPS},
                                           edit={"strength": 0.5, "keep_colour": keep}),
                            work / "model", tmp_path / keep, work / "real")
        edits[keep] = np.stack([read_png_rgb(tmp_path / keep / p) for p in manifest["path"]])
        sources = np.stack([read_png_rgb(work / "real" / real.loc[i, "path"]) for i in manifest["edit_of"]])
        drift[keep] = np.abs(edits[keep].mean(axis=(1, 2)) - sources.mean(axis=(1, 2)))  # (N, 3) grey levels
    # a model trained for one epoch shifts colours by tens of levels; matched moments leave rounding and
    # the pixels clamped at 0 or 255; matched histograms leave nothing: each channel holds the source's values
    assert np.median(drift["none"]) > 5 * np.median(drift["moments"]) and np.median(drift["moments"]) < 2
    flat = lambda images: np.sort(images.reshape(len(images), -1, 3), axis=1)  # noqa: E731
    np.testing.assert_array_equal(flat(edits["histogram"]), flat(sources))
    assert not np.array_equal(edits["histogram"], sources)  # the values moved: the edit's order, not the source's
