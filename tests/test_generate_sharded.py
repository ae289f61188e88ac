"""Generation under torchrun: shares of the images per process, the bytes of one process, clean failure."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import write_image_folder
from dvc_project import tree_md5s
from histosynth.config import params_from_mapping
from histosynth.generate.sampler import FORWARD_BLOCK, class_blocks
from histosynth.generate.shards import Shard
from histosynth.generators import train
from histosynth.generators.gan.models import build_generator
from histosynth.generators.training.checkpoint import save_generator, write_record

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "generate.py"
CLASSES = ("tumour", "stroma", "background")


def test_processes_take_disjoint_contiguous_shares_of_every_class():
    blocks = class_blocks(3, 2 * FORWARD_BLOCK + 5)  # 3 blocks per class, the last one partial
    for world_size in (1, 2, 4, 13):
        shares = [Shard(rank, world_size).take(blocks) for rank in range(world_size)]
        assert [b for share in shares for b in share] == blocks  # in order, each block once
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
        for share in shares:  # one index range per class
            for label in {label for label, _ in share}:
                mine = [b for lab, b in share if lab == label]
                assert mine == list(range(mine[0], mine[0] + len(mine)))


def make_project(root: Path, n_per_class: int, width: int = 8) -> Path:
    """models/gan (a dcgan with random weights, as training leaves it) and params.yaml."""
    torch.manual_seed(0)
    generator = build_generator("dcgan", len(CLASSES), 28, 16, width)
    save_generator(root / "models" / "gan", generator.state_dict())
    write_record(root / "models" / "gan", {"arch": "dcgan", "n_classes": 3, "class_names": list(CLASSES),
                                           "image_size": 28, "latent_dim": 16, "width": width})
    (root / "params.yaml").write_text(f"generate:\n  n_per_class: {n_per_class}\n  overgenerate: 1\n  device: cpu\n")
    return root


def torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(STAGE)]


def one_process() -> list[str]:
    return [sys.executable, str(STAGE)]


pytestmark = pytest.mark.slow


def test_two_gloo_processes_write_exactly_the_files_of_one(tmp_path):
    # 70 per class = 2 blocks per class, 6 in all: process 0 takes class 0 and block 0 of class 1,
    # process 1 the rest, so a class is split between the processes
    project = make_project(tmp_path / "sharded", n_per_class=70)
    done = subprocess.run(torchrun(2), cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stderr
    single = make_project(tmp_path / "single", n_per_class=70)
    done = subprocess.run(one_process(), cwd=single, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    sharded, alone = tree_md5s(project / "data"), tree_md5s(single / "data")
    assert len([name for name in alone if name.endswith(".png")]) == 3 * 70
    assert sharded == alone  # every PNG, every MD5SUMS and the manifest, byte for byte
    assert sorted(p.name for p in (project / "data").iterdir()) == ["candidates"]  # no temporary folder left


@pytest.fixture(scope="module")
def diffusion_model(tmp_path_factory) -> tuple[Path, Path]:
    """(real folder as ingest writes it, a ddpm trained on it for one epoch)."""
    root = tmp_path_factory.mktemp("ddpm")
    real = write_image_folder(root / "real", {"train": 16, "val": 4}, size=28)
    gan = params_from_mapping({"gan": dict(arch="ddpm", train_on="real", width=4, batch_size=16, epochs=1,
                                           probe={"every": 0}, threads=1)}).gan
    train(gan, real, real, root / "gan", root / "train_report")
    return real, root / "gan"


def make_edit_project(root: Path, diffusion_model: tuple[Path, Path], n_per_class: int) -> Path:
    """data/real, models/gan (the ddpm) and params.yaml asking for edits."""
    real, model = diffusion_model
    shutil.copytree(real, root / "data" / "real")
    shutil.copytree(model, root / "models" / "gan")
    (root / "params.yaml").write_text(f"generate:\n  n_per_class: {n_per_class}\n  overgenerate: 1\n  device: cpu\n"
                                      "  mode: edit\n  edit: {strength: 0.5}\n  diffusion: {steps: 4}\n")
    return root


def test_edits_under_two_gloo_processes_are_the_files_of_one(tmp_path, diffusion_model):
    # 70 per class = 2 blocks per class; 16 train images per class, so every image is edited 4-5 times
    sharded = make_edit_project(tmp_path / "sharded", diffusion_model, n_per_class=70)
    done = subprocess.run(torchrun(2), cwd=sharded, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stderr and "edits (strength 0.5)" in done.stderr
    single = make_edit_project(tmp_path / "single", diffusion_model, n_per_class=70)
    done = subprocess.run(one_process(), cwd=single, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    candidates = tree_md5s(sharded / "data" / "candidates")
    assert len([name for name in candidates if name.endswith(".png")]) == 3 * 70
    assert candidates == tree_md5s(single / "data" / "candidates")  # PNGs, MD5SUMS and the manifest (edit_of)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the torchrun worker with RANK=rank under ``parent`` (torchrun's agent)."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(child)
    return None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the worker process")
def test_a_process_that_dies_fails_the_stage_and_leaves_the_output_as_it_was(tmp_path):
    project = make_project(tmp_path, n_per_class=4)
    assert subprocess.run(one_process(), cwd=project, capture_output=True, timeout=300).returncode == 0
    before = tree_md5s(project / "data")

    (project / "params.yaml").write_text("generate:\n  n_per_class: 20000\n  overgenerate: 1\n  device: cpu\n  seed: 1\n")
    group = subprocess.Popen(torchrun(2), cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    shared = project / "data" / ".candidates.tmp-shards"
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None or not any(shared.glob("*/*.png")):  # rank 1 is writing its share
            assert group.poll() is None, group.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the processes never started writing"
            victim = victim or _rank_pid(group.pid, 1)
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        _, stderr = group.communicate(timeout=120)
    finally:
        if group.poll() is None:
            group.kill()
    assert group.returncode != 0, stderr[-3000:]
    assert tree_md5s(project / "data" / "candidates") == {k.removeprefix("candidates/"): v for k, v in before.items()}

    # the next run clears what the stopped group left and writes a complete output
    (project / "params.yaml").write_text("generate:\n  n_per_class: 3\n  overgenerate: 1\n  device: cpu\n")
    rerun = subprocess.run(one_process(), cwd=project, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(p.name for p in (project / "data").iterdir()) == ["candidates"]
    assert len(list((project / "data" / "candidates").rglob("*.png"))) == 9
