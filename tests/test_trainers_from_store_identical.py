"""The GAN and diffusion trainers, now reading their batches from an image store (issue 24, step 4),
train the same weights as the code before that change, which held the train split in memory as one
float tensor: on the demo source, a folder source and real BloodMNIST, for a GAN and a diffusion model.

ingest and augment run once with this checkout's code; then ``train`` runs with the code before
the change (``BASE``, from git) and with this checkout's, each in its own process as DVC runs it, in
copies of that project. The model folder (generator, checkpoint, record), the sample grids and the
loss and probe curves are compared byte for byte (metrics.json holds wall times and is not).

It trains six small models twice (3.5 minutes on 2 cores), so it runs only when asked, as the other
comparisons with earlier code do:

    HISTOSYNTH_COMPARE_STAGES=1 python -m pytest tests/test_trainers_from_store_identical.py
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import textured_image
from dvc_project import TINY_PARAMS, deep_update, tree_md5s
from histosynth.images import encode_png
from test_image_store_identical import REPO, SHARED_BLOODMNIST, _project, _stage, code_at

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("HISTOSYNTH_COMPARE_STAGES"),
                                 reason="set HISTOSYNTH_COMPARE_STAGES=1 to compare the trainers with the code before "
                                        "they read image stores (3.5 minutes)")]

BASE = "3a1cf9f5907cf0c1acdade7f617f43e833b00fb3"  # main before the trainers read image stores
COMPARED = ("models/gan", "reports/train/samples", "reports/train/samples_final.png", "reports/train/losses.tsv",
            "reports/train/probe.tsv")
ARCHS = {"dcgan": {}, "ddpm": {"gan": {"arch": "ddpm"}}}


@pytest.fixture(scope="module")
def base_code(tmp_path_factory) -> Path:
    return code_at(BASE, tmp_path_factory)


def _assert_same_training(tmp_path: Path, base_code: Path, params: dict) -> None:
    upstream = _project(tmp_path / "upstream", params, base_code)
    for name in ("ingest", "augment"):
        _stage(name, (REPO, upstream))
    before, after = tmp_path / "before", tmp_path / "after"
    for copy_to in (before, after):
        shutil.copytree(upstream, copy_to, symlinks=True)
    _stage("train", (base_code, before), (REPO, after))
    differences = []
    for output in COMPARED:
        old, new = _md5s(before / output), _md5s(after / output)
        if not old:
            differences.append(f"{output}: nothing written by the code before the change")
        differences += [f"{output}/{f}: {old.get(f, 'missing')} before, {new.get(f, 'missing')} now"
                        for f in sorted(set(old) | set(new)) if old.get(f) != new.get(f)]
    assert not differences, "training differs from the code before the change:\n" + "\n".join(differences[:40])


def _md5s(path: Path) -> dict[str, str]:
    """{relative path: MD5} of a folder's files, or {"": MD5} of a single file."""
    return {"": hashlib.md5(path.read_bytes()).hexdigest()} if path.is_file() else tree_md5s(path)


@pytest.mark.parametrize("arch", ARCHS)
def test_demo_training_is_unchanged(tmp_path, base_code, arch):
    _assert_same_training(tmp_path, base_code, deep_update(copy.deepcopy(TINY_PARAMS), ARCHS[arch]))


@pytest.mark.parametrize("arch", ARCHS)
def test_folder_source_training_is_unchanged(tmp_path, base_code, arch):
    source = tmp_path / "source"
    rng = np.random.default_rng(5)
    for label, name in enumerate(("Tumour cells", "stroma", "débris")):
        (source / name).mkdir(parents=True)
        for i in range(20):
            image = textured_image(label, 40 if i % 3 else 48, rng)  # resized to data.image_size by ingest
            (source / name / f"tile_{i:02d}.png").write_bytes(encode_png(image))
    params = deep_update(copy.deepcopy(TINY_PARAMS), {"data": {"source": f"folder:{source}"}, **ARCHS[arch]})
    _assert_same_training(tmp_path, base_code, params)


@pytest.mark.skipif(not SHARED_BLOODMNIST.is_file(),
                    reason=f"real BloodMNIST file not present at {SHARED_BLOODMNIST} (only on the dev machine)")
@pytest.mark.parametrize("arch", ARCHS)
def test_bloodmnist_training_is_unchanged(tmp_path, base_code, arch):
    data = {"source": "medmnist:bloodmnist", "root": str(SHARED_BLOODMNIST.parent), "image_size": 28,
            "max_per_class": 30, "max_eval_per_class": 12}
    _assert_same_training(tmp_path, base_code, deep_update(copy.deepcopy(TINY_PARAMS), {"data": data, **ARCHS[arch]}))
