"""ingest and augment, now streaming their images through the image store and .npz blocks (issue 24,
step 1), write byte for byte what the code before that change wrote: on the demo source (the
project's own params, as dvc.lock records them), a folder source, a MedMNIST-layout .npz made here
(RGB and greyscale) and the real BloodMNIST file (when it is here).

Both versions run each stage as DVC does (its script, in its own process) in projects of their own
with the same params. The code before the change is taken from git (``BASE``); a checkout without that
commit skips the test. A later change that means to change these outputs moves ``BASE`` to its own
parent commit (and says so).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from medmnist import INFO

from conftest import textured_image
from dvc_project import deep_update, tree_md5s
from histosynth.images import encode_png

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BASE = "5a11fa69c0f4fdbf4e74324f4945c49c78308944"  # main before the image store (as merged)
# beside the checkout (/work/main) or one level up (a worktree under /work/wt/)
SHARED_BLOODMNIST = next((p for p in (REPO.parent / "shared" / "data" / "bloodmnist.npz",
                                      REPO.parents[1] / "shared" / "data" / "bloodmnist.npz") if p.is_file()),
                         REPO.parent / "shared" / "data" / "bloodmnist.npz")
STAGES = {"ingest": ("data/real", "reports/ingest"), "augment": ("data/augmented", "reports/augment")}
SMALL = {"augment": {"per_class": 24}}


def code_at(commit: str, tmp_path_factory) -> Path:
    """src/, stages/ and params.yaml as they were at ``commit`` (the test skips without git or the commit)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"commit {commit[:12]} (the code before the change) is not in this checkout")
    root = tmp_path_factory.mktemp("base")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src", "stages", "params.yaml"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


@pytest.fixture(scope="module")
def base_code(tmp_path_factory) -> Path:
    return code_at(BASE, tmp_path_factory)


def _project(root: Path, params: dict, base_code: Path) -> Path:
    """A project with the params.yaml of ``base_code`` (which both versions accept: later params have
    defaults) updated by ``params``."""
    root.mkdir(parents=True)
    merged = deep_update(yaml.safe_load((base_code / "params.yaml").read_text()), params)
    (root / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    return root


def _stage(stage: str, *runs: tuple[Path, Path]) -> None:
    """Run ``stage`` with each (code, project) at once, each in its own process as DVC runs it."""
    procs = [(code, subprocess.Popen([sys.executable, str(code / "stages" / f"{stage}.py")], cwd=project,
                                     env={**os.environ, "PYTHONPATH": str(code / "src")}, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
             for code, project in runs]
    for code, proc in procs:
        stderr = proc.communicate()[1]
        assert proc.returncode == 0, f"{stage} ({code}) failed:\n{stderr[-3000:]}"


def _assert_same_outputs(tmp_path: Path, base_code: Path, params: dict) -> None:
    before, after = _project(tmp_path / "before", params, base_code), _project(tmp_path / "after", params, base_code)
    differences = []
    for stage, outputs in STAGES.items():
        _stage(stage, (base_code, before), (REPO, after))
        for output in outputs:
            old, new = tree_md5s(before / output), tree_md5s(after / output)
            if not old:
                differences.append(f"{output}: nothing written by the code before the change")
            differences += [f"{output}/{name}: {old.get(name, 'missing')} before, {new.get(name, 'missing')} now"
                            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    assert not differences, "outputs differ from the code before the change:\n" + "\n".join(differences[:40])


def test_demo_outputs_are_unchanged(tmp_path, base_code):
    _assert_same_outputs(tmp_path, base_code, {})  # the project's params (at BASE): what dvc.lock recorded


def test_folder_source_outputs_are_unchanged(tmp_path, base_code):
    source = tmp_path / "source"
    rng = np.random.default_rng(7)
    for label, name in enumerate(("Tumour cells", "stroma", "débris")):
        (source / name / "patient_a").mkdir(parents=True)
        for i in range(14):
            image = textured_image(label, 40 if i % 3 else 48, rng)  # resized to data.image_size by ingest
            (source / name / ("patient_a" if i < 4 else "") / f"tile_{i:02d}.png").write_bytes(encode_png(image))
    (source / "stroma" / "tile_00_copy.png").write_bytes((source / "stroma" / "patient_a" / "tile_00.png").read_bytes())
    _assert_same_outputs(tmp_path, base_code, deep_update(copy.deepcopy(SMALL), {"data": {"source": f"folder:{source}"}}))


def _medmnist_layout(path: Path, counts: dict[str, int], classes: int, size: int, rgb: bool, compressed: bool) -> None:
    """A .npz laid out like MedMNIST's (uint8 images, (N, 1) labels), with exact copies across splits."""
    rng = np.random.default_rng(3)
    arrays = {}
    for split, n in counts.items():
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % classes).astype(np.uint8)[rng.permutation(n), None]
    arrays["val_images"][:3] = arrays["train_images"][5:8]  # duplicates for the check to report
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


@pytest.mark.parametrize(("flag", "rgb", "compressed"), [("bloodmnist", True, True), ("organamnist", False, False)])
def test_medmnist_npz_outputs_are_unchanged(tmp_path, base_code, flag, rgb, compressed):
    _medmnist_layout(tmp_path / "raw" / f"{flag}.npz", {"train": 300, "val": 40, "test": 40},
                     len(INFO[flag]["label"]), 28, rgb, compressed)
    params = deep_update(copy.deepcopy(SMALL), {"data": {"source": f"medmnist:{flag}", "root": str(tmp_path / "raw"),
                                          "image_size": 28, "max_per_class": 20, "max_eval_per_class": 4}})
    _assert_same_outputs(tmp_path, base_code, params)


@pytest.mark.skipif(not SHARED_BLOODMNIST.is_file(),
                    reason=f"real BloodMNIST file not present at {SHARED_BLOODMNIST} (only on the dev machine)")
def test_bloodmnist_outputs_are_unchanged(tmp_path, base_code):
    params = deep_update(copy.deepcopy(SMALL), {"data": {"source": "medmnist:bloodmnist", "root": str(SHARED_BLOODMNIST.parent),
                                          "image_size": 28, "max_per_class": 30, "max_eval_per_class": 12}})
    _assert_same_outputs(tmp_path, base_code, params)
