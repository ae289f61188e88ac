"""GAN training on tiny real image folders: outputs, determinism, resume, divergence, archs."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import torch
from conftest import write_image_folder
from terminal import screen

from histosynth.config import params_from_mapping
from histosynth.errors import ConfigError, HistosynthError
from histosynth.generators import load_sampling_model
from histosynth.generators.gan.models import get_recipe
from histosynth.generators.gan.settings import resolve_settings
from histosynth.generators.gan.train import train
from histosynth.generators.training import checkpoint
from histosynth.generators.training.data import epoch_batches
from histosynth.images import md5_file, read_png_rgb
from histosynth.progress import PROGRESS_ENV, BarSafeHandler

TINY = dict(train_on="real", width=4, latent_dim=16, batch_size=16, epochs=2, checkpoint_every=1,
            probe={"every": 0}, threads=1)  # tiny models run fastest on one thread


def gan_params(**overrides):
    return params_from_mapping({"gan": TINY | overrides}).gan


def run(tmp_path, real_dir, name="run", **overrides):
    model_dir, report_dir = tmp_path / name / "model", tmp_path / name / "reports"
    record = train(gan_params(**overrides), real_dir, real_dir, model_dir, report_dir)
    return record, model_dir, report_dir


def read_tsv(path):
    header, *rows = path.read_text().splitlines()
    return [dict(zip(header.split("\t"), row.split("\t"))) for row in rows]


def test_training_writes_checkpoint_record_and_monitoring(tmp_path, tiny_real_dir):
    threads_before = torch.get_num_threads()
    record, model_dir, report_dir = run(tmp_path, tiny_real_dir, probe={"every": 1}, threads=2)
    assert torch.get_num_threads() == threads_before  # process-wide settings are restored

    assert record == json.loads((model_dir / checkpoint.RECORD_FILE).read_text())
    assert record["epoch"] == 2 and record["arch"] == "dcgan" and record["image_size"] == 32
    assert record["class_names"] == ["red blobs", "green stripes", "blue noise"]
    assert record["params"]["g_lr"] == get_recipe("dcgan").g_lr and record["params"]["width"] == 4
    state = torch.load(model_dir / checkpoint.CHECKPOINT_FILE, weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    generator, _, _ = load_sampling_model(model_dir)
    with torch.no_grad():
        images = generator(torch.randn(3, 16), torch.arange(3))
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1

    grid = read_png_rgb(report_dir / "samples_final.png")
    assert grid.shape[0] == 3 * 34 + 2 and grid.shape[1] == 8 * 34 + 2  # one row of 8 per class
    assert sorted(p.name for p in (report_dir / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    assert [row["epoch"] for row in read_tsv(report_dir / "losses.tsv")] == ["1", "2"]
    probe = read_tsv(report_dir / "probe.tsv")
    assert len(probe) == 2 and all(0.0 <= float(row["real_vs_fake_accuracy"]) <= 1.0 for row in probe)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["images_per_s"] > 0 and metrics["cpu_threads"] == 2
    assert metrics["real_vs_fake_accuracy"] == float(probe[-1]["real_vs_fake_accuracy"])


def test_same_params_give_byte_identical_model_folder(tmp_path, tiny_real_dir):
    _, first, _ = run(tmp_path, tiny_real_dir, name="a", epochs=1)
    _, second, _ = run(tmp_path, tiny_real_dir, name="b", epochs=1)
    files = sorted(p.name for p in first.iterdir())
    assert checkpoint.GENERATOR_FILE in files and len(files) >= 3
    # every file, the resumable training state included: DVC hashes the whole folder
    assert {f: md5_file(first / f) for f in files} == {f: md5_file(second / f) for f in files}
    _, other_seed, _ = run(tmp_path, tiny_real_dir, name="c", epochs=1, seed=1)
    assert md5_file(first / checkpoint.GENERATOR_FILE) != md5_file(other_seed / checkpoint.GENERATOR_FILE)


@pytest.mark.parametrize("settings", [dict(arch="dcgan"), dict(arch="ascgan", width=2, n_critic=2),
                                      dict(arch="projected", feature_size=32)])
def test_resumed_training_matches_uninterrupted_training(tmp_path, tiny_real_dir, caplog, settings):
    caplog.set_level(logging.INFO)
    # 3 batches per epoch; ascgan's G steps (every 2nd D step) straddle the resume point.
    settings = settings | dict(batch_size=24)
    run(tmp_path, tiny_real_dir, name="resumed", epochs=1, **settings)
    caplog.clear()
    record, resumed, reports = run(tmp_path, tiny_real_dir, name="resumed", epochs=2, **settings)
    assert "resuming from epoch 1 of 2" in caplog.text
    assert record["epoch"] == 2
    assert [row["epoch"] for row in read_tsv(reports / "losses.tsv")] == ["1", "2"]
    _, straight, _ = run(tmp_path, tiny_real_dir, name="straight", epochs=2, **settings)
    assert md5_file(resumed / checkpoint.GENERATOR_FILE) == md5_file(straight / checkpoint.GENERATOR_FILE)


@pytest.fixture
def no_cli_log_handler():
    """Take out the stderr handler an earlier CLI run in this process installed: this test reads the bar alone."""
    root = logging.getLogger()
    installed = [h for h in root.handlers if isinstance(h, BarSafeHandler)]
    for handler in installed:
        root.removeHandler(handler)
    yield
    for handler in installed:
        root.addHandler(handler)


def test_progress_is_one_bar_from_the_resumed_epoch_and_logs_only_probe_and_checkpoint_epochs(
        tmp_path, tiny_real_dir, caplog, capsys, monkeypatch, no_cli_log_handler):
    caplog.set_level(logging.INFO, logger="histosynth.generators.training.run")
    monkeypatch.setenv(PROGRESS_ENV, "1")  # draw the bar although pytest's stderr is no terminal
    run(tmp_path, tiny_real_dir, epochs=1)
    capsys.readouterr()
    caplog.clear()
    # probe and checkpoint intervals may change on resume
    _, _, reports = run(tmp_path, tiny_real_dir, epochs=5, checkpoint_every=3, probe={"every": 4, "max_images": 12})
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dcgan epoch")]
    # epoch 3: checkpoint; 4: probe; 5: the last (probe and checkpoint)
    assert [line.split(":")[0] for line in lines] == ["dcgan epoch 3/5", "dcgan epoch 4/5", "dcgan epoch 5/5"]
    assert "probe" not in lines[0] and "probe" in lines[1] and "probe" in lines[2]
    assert all(re.search(r"img/s; \d+:\d\d elapsed, ETA \d+:\d\d$", line) for line in lines)
    bar = capsys.readouterr().err
    frames = [frame for frame in bar.split("\r") if frame.strip()]
    assert frames[0].startswith("dcgan epoch 2/5  20%|")  # starts at the resumed epoch
    assert screen(bar) == [frames[-1].rstrip()]  # one bar, redrawn in place
    assert frames[-1].startswith("dcgan epoch 5/5 100%|") and "ETA 0:00 | d_loss" in frames[-1]
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["epochs_done"] == 5 and metrics["resumed_from_epoch"] == 1


def test_checkpoint_of_other_params_is_not_resumed(tmp_path, tiny_real_dir, caplog):
    caplog.set_level(logging.INFO)
    first, _, _ = run(tmp_path, tiny_real_dir, epochs=1)
    caplog.clear()
    second, _, _ = run(tmp_path, tiny_real_dir, epochs=2, g_lr=1e-4)
    assert "trained on other data or params: starting fresh" in caplog.text
    assert second["fingerprint"] != first["fingerprint"]
    assert json.loads((tmp_path / "run/reports/metrics.json").read_text())["resumed_from_epoch"] == 0


def test_finished_checkpoint_is_not_trained_again(tmp_path, tiny_real_dir):
    _, model_dir, _ = run(tmp_path, tiny_real_dir, epochs=1)
    before = md5_file(model_dir / checkpoint.GENERATOR_FILE)
    run(tmp_path, tiny_real_dir, epochs=1, checkpoint_every=3)  # not part of the run's identity
    assert md5_file(model_dir / checkpoint.GENERATOR_FILE) == before
    assert json.loads((tmp_path / "run/reports/metrics.json").read_text())["resumed_from_epoch"] == 1


def test_divergence_names_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path, tiny_real_dir):
    _, model_dir, _ = run(tmp_path, tiny_real_dir, epochs=1)
    # Make the saved discriminator blow up at the next step, as a run that diverged would.
    path = model_dir / checkpoint.CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    state["discriminator"]["head.linear.weight"].fill_(float("inf"))
    torch.save(state, path)
    saved = {name: md5_file(model_dir / name) for name in (checkpoint.CHECKPOINT_FILE, checkpoint.GENERATOR_FILE)}

    with pytest.raises(HistosynthError, match=r"non-finite loss in epoch 2 at step 1 .*last good checkpoint \(epoch 1\)"):
        run(tmp_path, tiny_real_dir, epochs=3)
    assert saved == {name: md5_file(model_dir / name) for name in saved}


def test_absurd_learning_rate_stops_in_the_first_epoch(tmp_path, tiny_real_dir):
    with pytest.raises(HistosynthError, match="non-finite loss in epoch 1 at step .*no checkpoint was written"):
        run(tmp_path, tiny_real_dir, g_lr=1e30, d_lr=1e30)
    assert not (tmp_path / "run/model" / checkpoint.GENERATOR_FILE).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_config_error(tmp_path, tiny_real_dir):
    with pytest.raises(ConfigError, match="gan.device = 'cuda' but PyTorch sees no CUDA GPU"):
        run(tmp_path, tiny_real_dir, device="cuda")


@pytest.mark.parametrize(
    "arch, size, width, precision",
    [("dcgan", 32, 4, "bf16"), ("sagan", 32, 2, "fp32"), ("ascgan", 28, 2, "bf16"), ("cwgan128", 64, 2, "fp32"),
     ("projected", 28, 4, "bf16")],
)
def test_every_arch_trains(tmp_path, arch, size, width, precision):
    # bf16 autocast on the CPU runs the same code path that CUDA mixed precision takes.
    real_dir = write_image_folder(tmp_path / "real", {"train": 8, "val": 4}, size=size)
    record, model_dir, report_dir = run(tmp_path, real_dir, arch=arch, width=width, precision=precision,
                                        batch_size=12, n_critic=1, epochs=1)
    assert record["arch"] == arch and record["image_size"] == size
    assert metrics_are_finite(json.loads((report_dir / "metrics.json").read_text()))
    assert json.loads((report_dir / "metrics.json").read_text())["precision"] == precision
    generator, _, _ = load_sampling_model(model_dir)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in generator.parameters())
    assert read_png_rgb(report_dir / "samples_final.png").shape[0] == 3 * (size + 2) + 2


def metrics_are_finite(metrics):
    return all(np.isfinite(metrics[key]) for key in ("d_loss", "g_loss"))


def test_without_ema_the_raw_generator_is_saved(tmp_path, tiny_real_dir):
    record, model_dir, _ = run(tmp_path, tiny_real_dir, ema=0, epochs=1)
    assert record["generator_weights"] == "raw"
    state = torch.load(model_dir / checkpoint.CHECKPOINT_FILE, weights_only=True)
    saved = torch.load(model_dir / checkpoint.GENERATOR_FILE, weights_only=True)
    assert "ema" not in state
    assert all(torch.equal(saved[k], v) for k, v in state["generator"].items())


def test_null_params_take_the_arch_recipe_and_values_override_it():
    recipe = get_recipe("ascgan")
    resolved = resolve_settings(params_from_mapping({"gan": {"arch": "ascgan"}}).gan)
    assert (resolved.batch_size, resolved.n_critic, resolved.lr_step) == (recipe.batch_size, recipe.n_critic, recipe.lr_step)
    assert resolved.diffaugment == recipe.diffaugment
    resolved = resolve_settings(params_from_mapping({"gan": {"arch": "ascgan", "n_critic": 2, "diffaugment": ["cutout"]}}).gan)
    assert resolved.n_critic == 2 and resolved.diffaugment == ("cutout",)


def test_fingerprint_ignores_run_length_and_device_but_not_training_values():
    def fingerprint(**gan):
        return resolve_settings(params_from_mapping({"gan": gan}).gan).fingerprint("md5", ("a", "b"), 32)

    base = fingerprint()
    assert fingerprint(epochs=99, checkpoint_every=7, device="cpu", precision="fp32", threads=3,
                       probe={"every": 3}) == base
    assert fingerprint(g_lr=1e-3) != base and fingerprint(seed=1) != base and fingerprint(ema=0) != base
    assert resolve_settings(gan_params()).fingerprint("other-md5", ("a", "b"), 32) != \
        resolve_settings(gan_params()).fingerprint("md5", ("a", "b"), 32)


def test_epoch_batches_are_seeded_and_shard_without_overlap():
    assert [b.tolist() for b in epoch_batches(50, 8, seed=0, epoch=3)] == \
        [b.tolist() for b in epoch_batches(50, 8, seed=0, epoch=3)]
    assert [b.tolist() for b in epoch_batches(50, 8, seed=0, epoch=3)] != \
        [b.tolist() for b in epoch_batches(50, 8, seed=0, epoch=4)]
    shards = [torch.cat(epoch_batches(50, 8, seed=0, epoch=0, rank=r, world_size=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 24
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


@pytest.mark.parametrize(
    "gan, message",
    [
        ({"diffaugment": ["blur"]}, "unknown DiffAugment polic(ies) 'blur'"),
        ({"perceptual_weights": "vgg.pth"}, "only used by arch ascgan"),
        ({"feature_size": 64}, "feature_size is only used by arch projected (arch is 'dcgan')"),
        ({"arch": "projected", "feature_size": 16}, "gan.feature_size = 16"),
        ({"pixel_discriminator": True}, "pixel_discriminator is only used by arch projected (arch is 'dcgan')"),
        ({"arch": "ddpm", "pixel_discriminator": True}, "pixel_discriminator only apply to GAN archs"),
        ({"ema": 1.0}, "gan.ema = 1.0"),
        ({"precision": "fp16"}, "gan.precision = 'fp16'"),
        ({"checkpoint_every": 0}, "gan.checkpoint_every = 0"),
        ({"batch_size": 1}, "gan.batch_size = 1"),
        ({"probe": {"max_images": 2}}, "gan.probe.max_images = 2"),
    ],
)
def test_bad_gan_params_are_named(gan, message):
    with pytest.raises(ConfigError) as err:
        params_from_mapping({"gan": gan}, source="params.yaml")
    assert message in str(err.value)


def test_missing_perceptual_weights_file_is_a_config_error(tmp_path, tiny_real_dir):
    with pytest.raises(ConfigError, match="perceptual_weights .*file not found"):
        run(tmp_path, tiny_real_dir, arch="ascgan", perceptual_weights=str(tmp_path / "vgg19.pth"))


def test_ema_warm_up_follows_a_young_generator():
    from histosynth.generators.training.ema import build_generator_ema
    from histosynth.generators.gan.models import build_generator

    def distance_after_one_update(warmup):
        torch.manual_seed(0)
        generator = build_generator("dcgan", 3, 32, 16, 4)
        ema = build_generator_ema(generator, 0.999, warmup=warmup)
        with torch.no_grad():
            for p in generator.parameters():
                p.add_(1.0)
        ema.update_parameters(generator)
        return max((a - p).abs().max().item() for a, p in zip(ema.module.parameters(), generator.parameters()))

    assert distance_after_one_update(warmup=False) == pytest.approx(0.999, abs=1e-4)
    assert distance_after_one_update(warmup=True) == pytest.approx(2 / 11, abs=1e-4)  # n = 1: decay 2/11


def test_standing_statistics_are_the_averaged_weights_own_batch_statistics():
    from histosynth.generators.training.ema import STANDING_BATCHES, with_standing_statistics
    from histosynth.generators.gan.models import build_generator

    torch.manual_seed(0)
    generator = build_generator("dcgan", 3, 32, 16, 8)
    first_norm = generator.norms[0].norm
    first_norm.running_mean.fill_(5.0)  # stale statistics, as an EMA of other weights' would be
    standing = with_standing_statistics(generator, 3, 16, 12, seed=7, device=torch.device("cpu"))
    again = with_standing_statistics(generator, 3, 16, 12, seed=7, device=torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(standing.state_dict().values(), again.state_dict().values()))
    assert not standing.training and first_norm.running_mean[0] == 5.0  # a copy; the original is untouched
    # the stem's BatchNorm input is the stem's output: its running mean is the mean over the pass
    noise = torch.Generator().manual_seed(7)
    means = [generator.stem(torch.randn(12, 16, generator=noise)).view(12, -1, 4, 4).mean(dim=(0, 2, 3))
             for _ in range(STANDING_BATCHES)]
    torch.testing.assert_close(standing.norms[0].norm.running_mean, torch.stack(means).mean(0), rtol=1e-4, atol=1e-5)
    assert standing.norms[0].norm.momentum == generator.norms[0].norm.momentum
