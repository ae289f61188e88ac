"""The generation engine on a small convolutional generator: layout, checksums, determinism."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from histosynth.errors import ConfigError
from histosynth.fsutil import unique_safe_names
from histosynth.generate.latents import image_latent, latents
from histosynth.generate.sampler import FORWARD_BLOCK, BlockSampler, resolve_device
from histosynth.generate.writer import write_synthetic_set
from histosynth.images import encode_png, md5_file, read_png_rgb
from histosynth.manifest import read_manifest
from histosynth.md5sums import MD5SUMS_NAME, format_md5sums

CLASSES = ("Épithélium DAB+", "stroma", "stroma ")  # the last two collide once made filesystem-safe
LATENT_DIM = 16


class TinyGenerator(nn.Module):
    """G(z, y) -> [B, 3, 16, 16] in [-1, 1], built from the layer types real generators use."""

    def __init__(self, n_classes: int, latent_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_classes, latent_dim)
        self.stem = nn.Linear(2 * latent_dim, 32 * 4 * 4)
        self.body = nn.Sequential(
            nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 3, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(torch.cat([z, self.embed(y)], 1)).view(-1, 32, 4, 4))


def make_sampler(seed: int = 7) -> BlockSampler:
    torch.manual_seed(0)
    generator = TinyGenerator(len(CLASSES), LATENT_DIM)
    for module in generator.modules():  # trained-looking BN statistics, so eval mode matters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return BlockSampler(generator, LATENT_DIM, seed, torch.device("cpu"))


def write_set(out_dir: Path, n_per_class: int, lookahead: int = 64, seed: int = 7):
    out_dir.mkdir(parents=True)
    return write_synthetic_set(make_sampler(seed), CLASSES, n_per_class, out_dir,
                               checkpoint_md5="0" * 32, arch="tiny", lookahead=lookahead)


def file_md5s(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): md5_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_latents_come_from_seed_class_and_index_alone():
    block = latents(seed=3, label=1, start=10, count=5, latent_dim=LATENT_DIM)
    assert block.dtype == np.float32 and block.shape == (5, LATENT_DIM)
    for row, index in enumerate(range(10, 15)):
        np.testing.assert_array_equal(block[row], image_latent(3, 1, index, LATENT_DIM))
    others = [image_latent(4, 1, 10, LATENT_DIM), image_latent(3, 2, 10, LATENT_DIM), image_latent(3, 1, 11, LATENT_DIM)]
    assert all(not np.array_equal(block[0], other) for other in others)


def test_writes_class_folders_md5sums_and_a_valid_manifest(tmp_path):
    out = tmp_path / "synthetic"
    returned = write_set(out, n_per_class=5)

    manifest = read_manifest(out)
    folders = unique_safe_names(CLASSES)
    assert folders == ["epithelium_dab", "stroma", "stroma_2"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*folders, "manifest.parquet"])
    assert len(manifest) == len(returned) == 15
    assert manifest["id"].tolist() == returned["id"].tolist()
    assert (manifest["source"] == "synthetic").all() and (manifest["split"] == "train").all()
    assert (manifest["origin"] == "gan:" + "0" * 32).all() and (manifest["arch"] == "tiny").all()
    assert (manifest["seed"] == 7).all()
    for label, (name, folder) in enumerate(zip(CLASSES, folders)):
        rows = manifest[manifest["label"] == label]
        assert (rows["class_name"] == name).all()
        assert rows["latent_index"].tolist() == list(range(5))
        assert rows["id"].tolist() == [f"syn_{folder}_{i:06d}" for i in range(5)]
        pngs = sorted((out / folder).glob("*.png"))
        assert [f"{folder}/{p.name}" for p in pngs] == rows["path"].tolist()
        for path, md5 in zip(rows["path"], rows["md5"]):
            image = read_png_rgb(out / path)
            assert image.shape == (16, 16, 3)
            assert md5_file(out / path) == md5
        lines = (out / folder / MD5SUMS_NAME).read_text().splitlines()
        assert lines == [f"{md5}  {Path(path).name}" for path, md5 in zip(rows["path"], rows["md5"])]


@pytest.mark.skipif(shutil.which("md5sum") is None, reason="needs GNU md5sum")
def test_md5sums_files_pass_md5sum_check_and_catch_a_changed_image(tmp_path):
    out = tmp_path / "synthetic"
    write_set(out, n_per_class=4)
    for folder in unique_safe_names(CLASSES):
        check = subprocess.run(["md5sum", "-c", MD5SUMS_NAME], cwd=out / folder, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.count(": OK") == 4

    victim = out / "stroma" / "syn_stroma_000002.png"
    victim.write_bytes(encode_png(np.zeros((16, 16, 3), np.uint8)))
    check = subprocess.run(["md5sum", "-c", MD5SUMS_NAME], cwd=out / "stroma", capture_output=True, text=True)
    assert check.returncode != 0 and "syn_stroma_000002.png: FAILED" in check.stdout


def test_md5sums_lines_are_sorted_by_file_name_and_refuse_names_md5sum_would_escape():
    assert format_md5sums([("b.png", "2" * 32), ("a.png", "1" * 32)]) == f"{'1' * 32}  a.png\n{'2' * 32}  b.png\n"
    with pytest.raises(ValueError, match="escaping"):
        format_md5sums([("a\\b.png", "1" * 32)])


def test_same_params_give_byte_identical_files(tmp_path):
    write_set(tmp_path / "a", n_per_class=6)
    write_set(tmp_path / "b", n_per_class=6)
    first, second = file_md5s(tmp_path / "a"), file_md5s(tmp_path / "b")
    assert len(first) == 3 * 6 + 3 + 1  # images, MD5SUMS files, manifest
    assert first == second


def test_images_depend_on_neither_lookahead_nor_how_many_were_asked_for(tmp_path):
    n_small, n_large = 5, FORWARD_BLOCK + 7  # the larger run spans two forward blocks per class
    small = write_set(tmp_path / "small", n_per_class=n_small, lookahead=1)
    large = write_set(tmp_path / "large", n_per_class=n_large, lookahead=1000)
    large_md5 = dict(zip(large["id"], large["md5"]))
    assert all(large_md5[i] == md5 for i, md5 in zip(small["id"], small["md5"]))
    assert large["md5"].nunique() == len(large)  # and every image is a different one


class CountingGenerator(TinyGenerator):
    def __init__(self) -> None:
        super().__init__(len(CLASSES), LATENT_DIM)
        self.calls = 0

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(z, y)


def test_stream_computes_at_most_lookahead_images_ahead_of_its_consumer():
    generator = CountingGenerator()
    sampler = BlockSampler(generator, LATENT_DIM, 0, torch.device("cpu"))
    n_blocks, depth = 12, 2
    stream = sampler.stream(1, n_blocks * FORWARD_BLOCK, lookahead=depth * FORWARD_BLOCK)
    for consumed in range(1, n_blocks * FORWARD_BLOCK + 1):
        next(stream)
        blocks_reached = -(-consumed // FORWARD_BLOCK)
        assert generator.calls <= blocks_reached + depth  # memory does not grow with the number of images
    assert next(stream, None) is None and generator.calls == n_blocks


def test_image_reproduces_the_stored_file_byte_for_byte(tmp_path):
    manifest = write_set(tmp_path / "out", n_per_class=FORWARD_BLOCK + 3)
    sampler = make_sampler()
    for label, index in [(0, 0), (1, FORWARD_BLOCK - 1), (2, FORWARD_BLOCK + 2)]:
        row = manifest[(manifest["label"] == label) & (manifest["latent_index"] == index)].iloc[0]
        stored = tmp_path / "out" / row["path"]
        image = sampler.image(label, index)
        np.testing.assert_array_equal(image, read_png_rgb(stored))
        assert encode_png(image) == stored.read_bytes()
    assert not np.array_equal(make_sampler(seed=8).image(0, 0), sampler.image(0, 0))


def test_sampler_switches_the_generator_to_eval_mode():
    generator = TinyGenerator(len(CLASSES), LATENT_DIM)
    assert generator.training
    BlockSampler(generator, LATENT_DIM, 0, torch.device("cpu"))
    assert not generator.training  # BatchNorm uses its running statistics, not the block's


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_asking_for_cuda_without_a_gpu_is_a_config_error():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="generate.device"):
        resolve_device("cuda")
