"""generate.colour_match: samples take the colour moments of a real train image of their class, drawn per
image, recorded in the manifest, reproducible one image at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import TINY_CLASSES
from histosynth.cli import app
from histosynth.config import params_from_mapping
from histosynth.config.generate import GenerateParams
from histosynth.errors import ConfigError
from histosynth.generate import generate, regenerate
from histosynth.generate.sampler import FORWARD_BLOCK
from histosynth.images import read_png_rgb
from histosynth.manifest import COLOUR_REFERENCE, read_manifest
from test_generate_stage import make_checkpoint


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    # random weights: the untrained generator's colours are nothing like the real tiles'
    return make_checkpoint(tmp_path / "models" / "gan", image_size=32, classes=TINY_CLASSES)


def params(**values) -> GenerateParams:
    return GenerateParams(**{"n_per_class": 6, "device": "cpu", **values})


def moments(image: np.ndarray) -> np.ndarray:
    pixels = image.reshape(-1, 3).astype(np.float64)
    return np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)])


def test_each_sample_takes_the_colour_moments_of_the_real_image_it_records(model_dir, tmp_path, tiny_real_dir):
    matched = generate(params(colour_match="moments"), model_dir, tmp_path / "matched", tiny_real_dir)
    plain = generate(params(), model_dir, tmp_path / "plain", tiny_real_dir)
    real = read_manifest(tiny_real_dir).set_index("id")
    assert COLOUR_REFERENCE not in plain
    gaps = {"matched": [], "plain": []}
    for (_, row), (_, plain_row) in zip(matched.iterrows(), plain.iterrows()):
        reference = real.loc[row[COLOUR_REFERENCE]]
        assert reference["split"] == "train" and reference["label"] == row["label"]  # train images of its class only
        target = moments(read_png_rgb(tiny_real_dir / reference["path"]))
        gaps["matched"].append(np.abs(moments(read_png_rgb(tmp_path / "matched" / row["path"])) - target).max())
        gaps["plain"].append(np.abs(moments(read_png_rgb(tmp_path / "plain" / plain_row["path"])) - target).max())
    # within a few grey levels (the rounding to uint8, the clamping of the brightest pixels to 255); the
    # untrained generator's own colours are tens of grey levels away
    assert max(gaps["matched"]) < 5.0 < min(gaps["plain"])
    assert len(set(matched[COLOUR_REFERENCE])) > len(TINY_CLASSES)  # drawn per image, not one per class


def test_a_recoloured_sample_depends_on_its_index_alone_and_regenerates_byte_for_byte(model_dir, tmp_path,
                                                                                        tiny_real_dir):
    small = generate(params(n_per_class=3, colour_match="moments", batch_size=2), model_dir, tmp_path / "small",
                     tiny_real_dir)
    large = generate(params(n_per_class=FORWARD_BLOCK + 2, colour_match="moments"), model_dir, tmp_path / "large",
                     tiny_real_dir)
    for label in range(len(TINY_CLASSES)):
        for index in range(3):
            first = small[(small["label"] == label) & (small["latent_index"] == index)].iloc[0]
            same = large[(large["label"] == label) & (large["latent_index"] == index)].iloc[0]
            assert (first["md5"], first[COLOUR_REFERENCE]) == (same["md5"], same[COLOUR_REFERENCE])
    row = large[(large["label"] == 1) & (large["latent_index"] == FORWARD_BLOCK + 1)].iloc[0]
    image = regenerate(model_dir, seed=0, label=1, index=FORWARD_BLOCK + 1, real_dir=tiny_real_dir,
                       colour_match="moments")
    assert np.array_equal(image, read_png_rgb(tmp_path / "large" / row["path"]))


def test_colour_match_needs_samples_and_the_real_folder(model_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"generate.*colour_match = 'moments' applies to samples; edits take"):
        params_from_mapping({"generate": {"mode": "edit", "colour_match": "moments"}})
    with pytest.raises(ConfigError, match=r"generate.colour_match is 'moments': pass the real image folder"):
        generate(params(colour_match="moments"), model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_histosynth_generate_takes_colour_match_from_the_command_line(model_dir, tmp_path, tiny_real_dir):
    (tmp_path / "params.yaml").write_text("generate:\n  device: cpu\n")
    out = tmp_path / "more"
    result = CliRunner().invoke(app, ["generate", "--params", str(tmp_path / "params.yaml"), "--checkpoint",
                                      str(model_dir), "--real", str(tiny_real_dir), "--out", str(out),
                                      "--n-per-class", "2", "--colour-match", "moments"])
    assert result.exit_code == 0, result.output
    assert read_manifest(out)[COLOUR_REFERENCE].str.startswith("train_").all()
