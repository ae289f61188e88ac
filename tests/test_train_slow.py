"""Training as the pipeline runs it: the stage script, under torchrun, and killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_image_folder

from histosynth.config import params_from_mapping
from histosynth.generators import load_sampling_model
from histosynth.generators.gan.train import train
from histosynth.generators.training import checkpoint
from histosynth.images import md5_file

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "train.py"
# One thread: tiny models run fastest on it, and both runs of the kill test must use the same count.
TINY = dict(train_on="real", width=4, latent_dim=16, batch_size=16, checkpoint_every=1, probe={"every": 0}, threads=1)

pytestmark = pytest.mark.slow


def make_project(root: Path, **gan) -> Path:
    """A project folder as the stage sees it: params.yaml and data/real."""
    write_image_folder(root / "data" / "real", {"train": 24, "val": 8})
    (root / "params.yaml").write_text(yaml.safe_dump({"gan": TINY | gan, "curate": {}}))
    return root


def stage_command(nproc: int = 1) -> list[str]:
    if nproc == 1:
        return [sys.executable, str(STAGE)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(STAGE)]


@pytest.mark.parametrize("gan", [dict(arch="dcgan"), dict(arch="ascgan", width=2, n_critic=2),
                                 dict(arch="ddpm", latent_dim=None)],
                         ids=["dcgan-bce", "ascgan-wgan-gp", "ddpm-diffusion"])
def test_torchrun_with_two_cpu_processes_trains_and_writes_one_checkpoint(tmp_path, gan):
    project = make_project(tmp_path, epochs=2, **gan)
    done = subprocess.run(stage_command(nproc=2), cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 1 of 2" in done.stderr and "process 2 of 2" in done.stderr

    model_dir = project / "models" / "gan"
    state = torch.load(model_dir / checkpoint.CHECKPOINT_FILE, weights_only=True)
    assert state["epoch"] == 2
    generator, record, _ = load_sampling_model(model_dir)
    assert record["epoch"] == 2 and record["arch"] == gan["arch"]
    assert all(torch.isfinite(p).all() for p in generator.parameters())
    metrics = json.loads((project / "reports" / "train" / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert not list(project.rglob(".*.tmp-*"))


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    epochs = 12  # the kill lands within ~20 ms of the first checkpoint, long before the last epoch
    project = make_project(tmp_path / "project", epochs=epochs)
    record_file = project / "models" / "gan" / checkpoint.RECORD_FILE
    first = subprocess.Popen(stage_command(), cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (record_file.is_file() and json.loads(record_file.read_text())["epoch"] >= 1):
            assert first.poll() is None, f"training ended before it could be killed: {first.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait()
    killed_at = json.loads(record_file.read_text())["epoch"]
    assert killed_at < epochs

    rerun = subprocess.run(stage_command(), cwd=project, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed_from = int(rerun.stderr.split("resuming from epoch ")[1].split()[0])
    assert 1 <= resumed_from < epochs
    assert json.loads(record_file.read_text())["epoch"] == epochs
    assert not list(project.rglob(".*.tmp-*"))

    real_dir = project / "data" / "real"
    params = params_from_mapping({"gan": TINY | dict(epochs=epochs)}).gan
    train(params, real_dir, real_dir, tmp_path / "straight" / "model", tmp_path / "straight" / "reports")
    assert md5_file(project / "models" / "gan" / checkpoint.GENERATOR_FILE) == \
        md5_file(tmp_path / "straight" / "model" / checkpoint.GENERATOR_FILE)
