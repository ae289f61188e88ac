"""The diffusion arch (ddpm) on tiny image folders: training contracts, sampling, generation."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_image_folder

from histosynth.config import params_from_mapping
from histosynth.config.gan import GAN_ARCHS
from histosynth.config.generate import DiffusionSampling, GenerateParams
from histosynth.errors import ConfigError, HistosynthError
from histosynth.generate import generate, regenerate
from histosynth.generators import family_name, known_archs, load_sampling_model, networks, train
from histosynth.generators.diffusion.recipe import get_recipe
from histosynth.generators.gan.models import known_archs as gan_archs
from histosynth.generators.training import checkpoint
from histosynth.images import encode_png, md5_file, read_png_rgb
from histosynth.manifest import read_manifest
from histosynth.package.networks import describe_gan

SIZE = 28
# A UNet of width 4 (levels of 4, 8 and 8 channels) trains at ~1000 images/s on one thread.
TINY = dict(arch="ddpm", train_on="real", width=4, batch_size=16, epochs=1, checkpoint_every=1, probe={"every": 0},
            threads=1)


def gan_params(**overrides):
    return params_from_mapping({"gan": TINY | overrides}).gan


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data") / "real", {"train": 16, "val": 4}, size=SIZE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, real_dir):
    """A diffusion model trained for one epoch, with its report folder."""
    root = tmp_path_factory.mktemp("trained")
    record = train(gan_params(probe={"every": 1}), real_dir, real_dir, root / "model", root / "reports")
    return record, root / "model", root / "reports"


def run(tmp_path, real_dir, name="run", **overrides):
    model_dir, report_dir = tmp_path / name / "model", tmp_path / name / "reports"
    return train(gan_params(**overrides), real_dir, real_dir, model_dir, report_dir), model_dir, report_dir


def test_training_writes_the_contracts_of_every_generator(trained):
    record, model_dir, report_dir = trained
    assert record == json.loads((model_dir / checkpoint.RECORD_FILE).read_text())
    assert record["arch"] == "ddpm" and record["family"] == "diffusion" and record["image_size"] == SIZE
    assert record["latent_dim"] == 3 * SIZE * SIZE  # an image's initial noise
    assert record["unet"]["num_class_embeds"] == 4  # 3 classes + the null class of classifier-free guidance
    assert record["unet"]["block_out_channels"] == [4, 8, 8]
    recipe = get_recipe("ddpm")
    assert record["params"]["g_lr"] == recipe.lr and record["params"]["schedule"] == recipe.schedule
    assert record["params"]["label_dropout"] == recipe.label_dropout and record["params"]["width"] == 4
    assert record["sampling"] == {"sampler": recipe.sampler, "steps": recipe.steps, "guidance": recipe.guidance}
    assert record["noise"]["beta_schedule"] == "squaredcos_cap_v2" and "diffusers" in record["versions"]
    for name in (checkpoint.CHECKPOINT_FILE, checkpoint.GENERATOR_FILE):  # tensors only
        assert torch.load(model_dir / name, weights_only=True)

    losses = pd.read_csv(report_dir / "losses.tsv", sep="\t")
    assert list(losses.columns) == ["epoch", "d_loss", "g_loss", "denoising_loss"]  # one DVC plot for every family
    assert losses["d_loss"].isna().all() and losses["denoising_loss"].between(0, 10).all()
    probe = pd.read_csv(report_dir / "probe.tsv", sep="\t")
    assert len(probe) == 1 and 0 <= probe["real_vs_fake_accuracy"].iloc[0] <= 1
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["arch"] == "ddpm" and np.isfinite(metrics["denoising_loss"]) and metrics["images_per_s"] > 0
    assert read_png_rgb(report_dir / "samples_final.png").shape == (3 * (SIZE + 2) + 2, 8 * (SIZE + 2) + 2, 3)
    assert (report_dir / "samples" / "epoch_0001.png").is_file()


def test_same_params_give_a_byte_identical_model_folder(tmp_path, real_dir, trained):
    _, first, _ = run(tmp_path, real_dir, name="a")
    _, second, _ = run(tmp_path, real_dir, name="b")
    files = sorted(p.name for p in first.iterdir())
    assert {f: md5_file(first / f) for f in files} == {f: md5_file(second / f) for f in files}
    # the probe (on in the fixture's run) draws nothing that training uses
    assert md5_file(trained[1] / checkpoint.GENERATOR_FILE) == md5_file(first / checkpoint.GENERATOR_FILE)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, real_dir, caplog):
    caplog.set_level(logging.INFO)
    run(tmp_path, real_dir, name="resumed", epochs=1)
    caplog.clear()
    record, resumed, _ = run(tmp_path, real_dir, name="resumed", epochs=2)
    assert "resuming from epoch 1 of 2" in caplog.text and record["epoch"] == 2
    _, straight, _ = run(tmp_path, real_dir, name="straight", epochs=2)
    for name in (checkpoint.GENERATOR_FILE, checkpoint.RECORD_FILE):
        assert md5_file(resumed / name) == md5_file(straight / name)


def test_a_non_finite_loss_stops_training_in_one_line(tmp_path, real_dir):
    with pytest.raises(HistosynthError, match="non-finite loss in epoch 1 at step .*no checkpoint was written.*"
                                              "Lower gan.g_lr"):
        run(tmp_path, real_dir, g_lr=1e30, ema=0)
    assert not (tmp_path / "run/model" / checkpoint.GENERATOR_FILE).exists()


def test_bf16_autocast_trains(tmp_path, real_dir):
    _, model_dir, report_dir = run(tmp_path, real_dir, precision="bf16")
    assert json.loads((report_dir / "metrics.json").read_text())["precision"] == "bf16"
    generator, _, _ = load_sampling_model(model_dir)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in generator.parameters())


def test_an_unsupported_image_size_is_one_line_naming_the_sizes(tmp_path):
    real = write_image_folder(tmp_path / "real", {"train": 4, "val": 4}, size=48)
    with pytest.raises(ConfigError, match=r"^gan.arch=ddpm supports image sizes 28, 32, 64, 128; "
                                          r"data.image_size is 48$"):
        train(gan_params(), real, real, tmp_path / "model", tmp_path / "reports")


@pytest.mark.parametrize("gan, message", [
    ({"arch": "ddpm", "d_lr": 1e-3, "n_critic": 2}, "d_lr, n_critic only apply to GAN archs (arch is 'ddpm'"),
    ({"arch": "dcgan", "diffusion": {"schedule": "linear"}}, "diffusion.schedule only apply to diffusion archs"),
    ({"arch": "ddpm", "diffusion": {"schedule": "edm"}}, "gan.diffusion.schedule = 'edm'"),
    ({"arch": "ddpm", "diffusion": {"label_dropout": 1.0}}, "gan.diffusion.label_dropout = 1.0"),
])
def test_keys_of_the_other_family_are_named(gan, message):
    with pytest.raises(ConfigError) as err:
        params_from_mapping({"gan": gan}, source="params.yaml")
    assert message in str(err.value)


def test_registry_puts_every_arch_in_one_family():
    assert set(known_archs()) == {"dcgan", "sagan", "ascgan", "cwgan128", "projected", "ddpm"}
    assert GAN_ARCHS == gan_archs()  # params.yaml's allowed values match the GAN registry
    assert {arch: family_name(arch) for arch in ("dcgan", "ddpm")} == {"dcgan": "gan", "ddpm": "diffusion"}
    with pytest.raises(ConfigError, match="gan.arch='vae' is unknown"):
        family_name("vae")


def test_generation_is_seeded_per_image_and_regenerate_rebuilds_any_image(trained, tmp_path):
    _, model_dir, _ = trained
    small = generate(GenerateParams(n_per_class=3, device="cpu", diffusion={"steps": 4}), model_dir, tmp_path / "s")
    large = generate(GenerateParams(n_per_class=5, device="cpu", diffusion={"steps": 4}), model_dir, tmp_path / "l")
    assert (small["origin"] == f"diffusion:{md5_file(model_dir / checkpoint.GENERATOR_FILE)}").all()
    assert small[["sampler", "steps", "guidance"]].drop_duplicates().to_dict("records") == \
        [{"sampler": "ddim", "steps": 4, "guidance": get_recipe("ddpm").guidance}]
    first = large[large["latent_index"] < 3].reset_index(drop=True)
    assert first["md5"].tolist() == small["md5"].tolist()  # a larger run starts with the smaller run's images
    assert small["md5"].nunique() == len(small)
    row = large.iloc[7]
    image = regenerate(model_dir, seed=0, label=int(row["label"]), index=int(row["latent_index"]),
                       sampling=DiffusionSampling(steps=4))
    assert encode_png(image) == (tmp_path / "l" / row["path"]).read_bytes()


@pytest.mark.parametrize("sampling", [{"sampler": "dpm", "steps": 3}, {"steps": 3, "guidance": 2.5}])
def test_other_samplers_and_guidance_are_deterministic_and_recorded(trained, tmp_path, sampling):
    _, model_dir, _ = trained
    params = GenerateParams(n_per_class=2, device="cpu", diffusion=sampling)
    a = generate(params, model_dir, tmp_path / "a")
    b = generate(params, model_dir, tmp_path / "b")
    plain = generate(GenerateParams(n_per_class=2, device="cpu", diffusion={"steps": 3}), model_dir, tmp_path / "c")
    assert a["md5"].tolist() == b["md5"].tolist() and a["md5"].tolist() != plain["md5"].tolist()
    for key, value in sampling.items():
        assert (a[key] == value).all()
    row = a.iloc[3]
    image = regenerate(model_dir, seed=0, label=int(row["label"]), index=int(row["latent_index"]),
                       sampling=DiffusionSampling(**sampling))
    assert encode_png(image) == (tmp_path / "a" / row["path"]).read_bytes()


def test_a_gan_checkpoint_ignores_diffusion_sampling_with_a_warning(tmp_path, real_dir, caplog):
    model_dir = tmp_path / "gan"
    train(params_from_mapping({"gan": dict(train_on="real", width=4, latent_dim=16, batch_size=16, epochs=1,
                                           probe={"every": 0}, threads=1)}).gan,
          real_dir, real_dir, model_dir, tmp_path / "reports")
    manifest = generate(GenerateParams(n_per_class=2, device="cpu", diffusion={"steps": 3}), model_dir, tmp_path / "o")
    assert "checkpoint is a GAN (dcgan): ignored" in caplog.text
    assert "steps" not in manifest.columns and (manifest["origin"].str.startswith("gan:")).all()


def test_the_package_database_describes_the_unet_and_no_discriminator(trained):
    record, _, _ = trained
    generator, discriminator = describe_gan(record)
    assert generator["network"]["type"] == "UNet2DModel" and generator["latent_dim"] == 3 * SIZE * SIZE
    assert generator["network"]["parameters"] == sum(p.numel() for p in networks(record)[0].parameters())
    assert discriminator["network"] is None and discriminator["arch"] == "ddpm"


def test_cli_sampling_options_reach_the_sampler(trained, tmp_path):
    from typer.testing import CliRunner

    from histosynth.cli import app

    _, model_dir, _ = trained
    (tmp_path / "params.yaml").write_text("generate:\n  n_per_class: 1\n  device: cpu\n  diffusion: {steps: 9}\n")
    args = ["generate", "--params", str(tmp_path / "params.yaml"), "--checkpoint", str(model_dir),
            "--out", str(tmp_path / "out"), "--sampler", "dpm", "--guidance", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "out")
    assert manifest[["sampler", "steps", "guidance"]].drop_duplicates().to_dict("records") == \
        [{"sampler": "dpm", "steps": 9, "guidance": 0.0}]  # steps from params.yaml, the rest from the options


class OracleUNet(torch.nn.Module):
    """Predicts exactly the noise (or velocity) that turns x_t back into a known image per class."""

    def __init__(self, images: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str) -> None:
        super().__init__()
        self.images, self.abar, self.prediction = images, alphas_cumprod, prediction
        self.config = type("Config", (), {"sample_size": images.shape[-1]})

    def forward(self, x, t, class_labels, return_dict=False):
        a = self.abar[t.long()]
        x0 = self.images[class_labels]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return (eps if self.prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0,)


@pytest.mark.parametrize("sampler", ["ddim", "dpm"])
@pytest.mark.parametrize("schedule, prediction", [("cosine", "epsilon"), ("linear", "v_prediction")])
def test_samplers_recover_the_image_an_exact_model_points_to(sampler, schedule, prediction):
    from histosynth.generators.diffusion.networks import noise_config, training_scheduler
    from histosynth.generators.diffusion.sampling import GuidedSampler, Sampling

    noise = noise_config(1000, schedule, prediction)
    images = torch.rand(3, 3, 8, 8) * 1.6 - 0.8  # classes 0, 1 and the null class 2
    oracle = OracleUNet(images, training_scheduler(noise).alphas_cumprod, prediction)
    labels = torch.tensor([0, 1, 1, 0])
    z = torch.randn(4, 3 * 8 * 8)
    out = GuidedSampler(oracle, noise, Sampling(sampler, 10, 1.0), n_classes=2)(z, labels)
    torch.testing.assert_close(out, images[labels], atol=1e-5, rtol=0)
    # guidance w extrapolates from the null class's image towards the asked class's image
    guided = GuidedSampler(oracle, noise, Sampling(sampler, 10, 1.5), n_classes=2)(z, labels)
    torch.testing.assert_close(guided, (images[2] + 1.5 * (images[labels] - images[2])).clamp(-1, 1), atol=1e-4,
                               rtol=0)
    unconditional = GuidedSampler(oracle, noise, Sampling(sampler, 10, 0.0), n_classes=2)(z, labels)
    torch.testing.assert_close(unconditional, images[2].expand(4, -1, -1, -1), atol=1e-5, rtol=0)


class NoiseOracle(torch.nn.Module):
    """Predicts the very noise an image was noised with, whatever the timestep: a sampler that starts
    an edit at the timestep it noised the image to walks straight back to the image."""

    def __init__(self, noise: torch.Tensor) -> None:
        super().__init__()
        self.noise = noise
        self.config = type("Config", (), {"sample_size": noise.shape[-1]})

    def forward(self, x, t, class_labels, return_dict=False):
        return (self.noise.repeat(len(x) // len(self.noise), 1, 1, 1),)


@pytest.mark.parametrize("sampler", ["ddim", "dpm"])
@pytest.mark.parametrize("strength", [0.04, 0.35, 0.7])
def test_an_edit_starts_denoising_at_the_noise_level_it_noised_the_image_to(sampler, strength):
    from histosynth.generators.diffusion.networks import noise_config
    from histosynth.generators.diffusion.sampling import GuidedSampler, Sampling, edit_steps

    images = torch.rand(4, 3, 8, 8) * 1.6 - 0.8
    z = torch.randn(4, 3 * 8 * 8)
    model = GuidedSampler(NoiseOracle(z.reshape(4, 3, 8, 8)), noise_config(1000, "cosine", "epsilon"),
                          Sampling(sampler, 25, 2.0), n_classes=2)
    edited = model.edit(z, torch.tensor([0, 1, 1, 0]), images, strength)
    torch.testing.assert_close(edited, images, atol=2e-4, rtol=0)
    assert edit_steps(25, strength) == {0.04: 1, 0.35: 9, 0.7: 18}[strength]
    assert edit_steps(25, 1.0) == 25 and edit_steps(25, 0.001) == 1
