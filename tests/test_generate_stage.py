"""`generate` / `regenerate` / `histosynth generate` / stages/generate.py on real checkpoint folders."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from histosynth.cli import app
from histosynth.config import params_from_mapping
from histosynth.config.generate import GenerateParams
from histosynth.entry import EXIT_INPUT
from histosynth.errors import ConfigError, DataError
from histosynth.generate import generate, regenerate
from histosynth.generate.sampler import FORWARD_BLOCK, BlockSampler
from histosynth.generators.gan.models import build_generator, get_recipe, known_archs
from histosynth.generators.gan.train import train
from histosynth.generators.training.checkpoint import GENERATOR_FILE, checkpoint_hash, save_generator, write_record
from histosynth.images import encode_png, md5_file, read_png_rgb
from histosynth.manifest import class_names_of, read_manifest
from histosynth.output_policy import MARKER

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("tumour", "stroma", "background")


def make_checkpoint(model_dir: Path, arch: str = "dcgan", image_size: int = 28, width: int = 8,
                    classes: tuple[str, ...] = CLASSES) -> Path:
    """A checkpoint folder as training leaves it: generator.pt (random weights) + record.json."""
    recipe = get_recipe(arch)
    torch.manual_seed(0)
    generator = build_generator(arch, len(classes), image_size, recipe.latent_dim, width)
    save_generator(model_dir, generator.state_dict())
    write_record(model_dir, {"arch": arch, "n_classes": len(classes), "class_names": list(classes),
                             "image_size": image_size, "latent_dim": recipe.latent_dim, "width": width})
    return model_dir


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "models" / "gan")


def params(**values) -> GenerateParams:
    return GenerateParams(**{"n_per_class": 4, "device": "cpu", **values})


def file_md5s(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): md5_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_writes_the_synthetic_set_of_the_checkpoint(model_dir, tmp_path):
    out = tmp_path / "data" / "synthetic"
    returned = generate(params(seed=3), model_dir, out)

    manifest = read_manifest(out)
    assert manifest.equals(returned)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "background", "manifest.parquet", "stroma", "tumour"]
    assert manifest.groupby("class_name").size().to_dict() == {name: 4 for name in CLASSES}
    assert (manifest["checkpoint_md5"] == checkpoint_hash(model_dir)).all()
    assert (manifest["origin"] == f"gan:{checkpoint_hash(model_dir)}").all()
    assert (manifest["arch"] == "dcgan").all() and (manifest["seed"] == 3).all() and (manifest["device"] == "cpu").all()
    assert read_png_rgb(out / manifest["path"].iloc[0]).shape == (28, 28, 3)
    assert not list(tmp_path.glob("data/.*"))  # no temporary folder left behind


def test_a_trained_checkpoint_generates_into_the_real_sets_class_folders(tmp_path, tiny_real_dir):
    gan = params_from_mapping({"gan": {"train_on": "real", "width": 4, "latent_dim": 16, "batch_size": 16,
                                       "epochs": 1, "probe": {"every": 0}}}).gan
    model_dir = tmp_path / "models" / "gan"
    train(gan, tiny_real_dir, tiny_real_dir, model_dir, tmp_path / "reports")

    out = tmp_path / "synthetic"
    manifest = generate(params(n_per_class=3), model_dir, out)
    real = read_manifest(tiny_real_dir)
    assert class_names_of(manifest) == class_names_of(real)
    real_folders = {path.split("/")[1] for path in real["path"]}
    assert {path.split("/")[0] for path in manifest["path"]} == real_folders
    row = manifest.iloc[4]
    image = regenerate(model_dir, seed=0, label=int(row["label"]), index=int(row["latent_index"]))
    assert image.shape == (32, 32, 3) and encode_png(image) == (out / row["path"]).read_bytes()


def test_regenerate_reproduces_stored_files_byte_for_byte(model_dir, tmp_path):
    out = tmp_path / "synthetic"
    manifest = generate(params(n_per_class=FORWARD_BLOCK + 2, seed=11, batch_size=7), model_dir, out)
    for label, index in [(0, 0), (1, 5), (2, FORWARD_BLOCK + 1)]:
        row = manifest[(manifest["label"] == label) & (manifest["latent_index"] == index)].iloc[0]
        image = regenerate(model_dir, seed=int(row["seed"]), label=label, index=index)
        assert encode_png(image) == (out / row["path"]).read_bytes()


def test_bf16_images_stay_within_a_grey_level_or_two_and_regenerate_at_their_precision(model_dir, tmp_path):
    fp32 = generate(params(precision="fp32"), model_dir, tmp_path / "fp32")
    bf16 = generate(params(precision="bf16"), model_dir, tmp_path / "bf16")
    assert (fp32["precision"] == "fp32").all() and (bf16["precision"] == "bf16").all()
    a = np.stack([read_png_rgb(tmp_path / "fp32" / p) for p in fp32["path"]]).astype(int)
    b = np.stack([read_png_rgb(tmp_path / "bf16" / p) for p in bf16["path"]]).astype(int)
    assert (a != b).any() and np.abs(a - b).max() <= 2 and np.abs(a - b).mean() < 0.25  # bf16, yet close
    row = bf16.iloc[5]
    image = regenerate(model_dir, seed=0, label=int(row["label"]), index=int(row["latent_index"]), precision="bf16")
    assert encode_png(image) == (tmp_path / "bf16" / row["path"]).read_bytes()


def test_same_params_give_byte_identical_outputs_and_another_seed_other_images(model_dir, tmp_path):
    generate(params(), model_dir, tmp_path / "a")
    generate(params(), model_dir, tmp_path / "b")
    generate(params(seed=1), model_dir, tmp_path / "c")
    first, second, other = (file_md5s(tmp_path / name) for name in "abc")
    assert first == second
    images = {path for path in first if path.endswith(".png")}
    assert len(images) == 12 and not any(first[path] == other[path] for path in images)


def test_a_new_run_replaces_the_previous_output(model_dir, tmp_path):
    out = tmp_path / "synthetic"
    generate(params(n_per_class=5), model_dir, out)
    generate(params(n_per_class=2), model_dir, out)
    assert len(list(out.rglob("*.png"))) == len(read_manifest(out)) == 3 * 2


def test_missing_checkpoint_says_to_train_first(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*dvc repro train"):
        generate(params(), tmp_path / "models" / "gan", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=rf"holds no {GENERATOR_FILE}.*dvc repro train"):
        regenerate(tmp_path / "empty", seed=0, label=0, index=0)
    assert not (tmp_path / "out").exists()


def test_regenerate_refuses_a_class_the_generator_does_not_have(model_dir):
    with pytest.raises(ConfigError, match=r"class label 3 is out of range.*0\.\.2"):
        regenerate(model_dir, seed=0, label=3, index=0)
    with pytest.raises(ConfigError, match="index"):
        regenerate(model_dir, seed=0, label=0, index=-1)


@pytest.mark.parametrize("arch", known_archs())
def test_every_registry_generator_samples_deterministically(arch):
    recipe = get_recipe(arch)
    size = min(recipe.image_sizes)
    torch.manual_seed(0)
    sampler = BlockSampler(build_generator(arch, 2, size, recipe.latent_dim, 8), recipe.latent_dim, 0,
                           torch.device("cpu"))
    images = [image for _, _, image in sampler.stream(2, 2, lookahead=1)]
    assert len(images) == 4 and all(image.shape == (size, size, 3) and image.dtype == np.uint8 for image in images)
    np.testing.assert_array_equal(sampler.image(1, 1), images[3])


def test_cli_options_override_params_yaml(model_dir, tmp_path):
    (tmp_path / "params.yaml").write_text("generate:\n  n_per_class: 50\n  seed: 9\n  device: cpu\n")
    out = tmp_path / "more"
    args = ["generate", "--params", str(tmp_path / "params.yaml"), "--checkpoint", str(model_dir),
            "--out", str(out), "--n-per-class", "3", "--batch-size", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert len(manifest) == 9 and (manifest["seed"] == 9).all()  # seed from params.yaml


def test_cli_reports_a_missing_checkpoint_in_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("generate:\n  n_per_class: 2\n")
    result = CliRunner().invoke(app, ["generate", "--params", str(tmp_path / "params.yaml"),
                                      "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_INPUT
    assert "error:" in result.output and "dvc repro train" in result.output and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("md5sum") is None, reason="needs GNU md5sum")
def test_stage_script_writes_n_per_class_x_overgenerate_candidates_that_md5sum_verifies(tmp_path):
    make_checkpoint(tmp_path / "models" / "gan")
    (tmp_path / "params.yaml").write_text("generate:\n  n_per_class: 3\n  overgenerate: 2\n  device: cpu\n")
    run = subprocess.run([sys.executable, str(REPO / "stages" / "generate.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for folder in CLASSES:
        check = subprocess.run(["md5sum", "-c", "MD5SUMS"], cwd=tmp_path / "data" / "candidates" / folder,
                               capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout.count(": OK") == 6, check.stdout + check.stderr
