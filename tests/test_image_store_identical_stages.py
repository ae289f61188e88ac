"""featurenet, curate, qa and benchmark, now reading their images a batch at a time from image stores
(issue 24, steps 2 and 3), write byte for byte what the code before that change wrote: on the demo
source and a folder source, with the small GAN and benchmark the end-to-end tests use
(tests/dvc_project.py's TINY_PARAMS).

The stages before them (ingest ... generate) run once, with this checkout's code; then each of the
four runs with the code before the change (``BASE``, from git) and with this checkout's, each in its
own process as DVC runs it, in copies of that project (the package between qa and benchmark is made
by this checkout's code in both). Every file of every output of the four is compared. A checkout without ``BASE`` skips the test; a later change that means to change these
outputs moves ``BASE`` to its own parent commit (and says so).

It runs the four stages three times over (about 3.5 minutes of a make test's 15), so it runs only when
asked, as tests/test_outputs_identical.py does; run it before landing a change to how these stages read
their images:

    HISTOSYNTH_COMPARE_STAGES=1 python -m pytest tests/test_image_store_identical_stages.py
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import textured_image
from dvc_project import TINY_PARAMS, deep_update, tree_md5s
from histosynth.images import encode_png
from histosynth.pipeline import stage
from test_image_store_identical import REPO, _project, _stage, code_at

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("HISTOSYNTH_COMPARE_STAGES"),
                                 reason="set HISTOSYNTH_COMPARE_STAGES=1 to compare featurenet ... benchmark with the code "
                                        "before the image stores (3.5 minutes)")]

# main before featurenet ... benchmark read image stores: the tip of the branch that brought the
# study and the strong arms (issue 23), merged just before (the benchmark's metrics.json gained recall there)
BASE = "f8a0b857d56b3fd86f782f293c55070310c6db67"
UPSTREAM = ("ingest", "augment", "train", "generate")
# (stage, compared): the package between qa and the benchmark is made by this checkout's code in both
STEPS = (("featurenet", True), ("curate", True), ("qa", True), ("package", False), ("benchmark", True))


@pytest.fixture(scope="module")
def base_code(tmp_path_factory) -> Path:
    return code_at(BASE, tmp_path_factory)


def _assert_same_outputs(tmp_path: Path, base_code: Path, params: dict) -> None:
    upstream = _project(tmp_path / "upstream", params, base_code)
    for name in UPSTREAM:
        _stage(name, (REPO, upstream))
    before, after = tmp_path / "before", tmp_path / "after"
    for copy_to in (before, after):
        shutil.copytree(upstream, copy_to, symlinks=True)
    differences = []
    for name, compared in STEPS:
        if not compared:
            _stage(name, (REPO, before), (REPO, after))
            continue
        _stage(name, (base_code, before), (REPO, after))
        for tracked in stage(name).outputs:
            old, new = tree_md5s(before / tracked.path), tree_md5s(after / tracked.path)
            if (before / tracked.path).is_file():  # a single file (metrics.json): compare it alone
                old, new = ({"": m} for m in (_md5(before / tracked.path), _md5(after / tracked.path)))
            if not old:
                differences.append(f"{tracked.path}: nothing written by the code before the change")
            differences += [f"{tracked.path}/{f}: {old.get(f, 'missing')} before, {new.get(f, 'missing')} now"
                            for f in sorted(set(old) | set(new)) if old.get(f) != new.get(f)]
    assert not differences, "outputs differ from the code before the change:\n" + "\n".join(differences[:40])


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def test_demo_outputs_are_unchanged(tmp_path, base_code):
    # 100 per class: two of the demo's classes get affine children (its train split has 62 to 455 a class)
    _assert_same_outputs(tmp_path, base_code, deep_update(copy.deepcopy(TINY_PARAMS), {"augment": {"per_class": 100}}))


def test_folder_source_outputs_are_unchanged(tmp_path, base_code):
    source = tmp_path / "source"
    rng = np.random.default_rng(11)
    for label, name in enumerate(("Tumour cells", "stroma", "débris")):
        (source / name / "patient_a").mkdir(parents=True)
        for i in range(24):
            image = textured_image(label, 40 if i % 3 else 48, rng)  # resized to data.image_size by ingest
            (source / name / ("patient_a" if i < 4 else "") / f"tile_{i:02d}.png").write_bytes(encode_png(image))
    # an exact copy within train: the near-copy searches meet tied distances
    (source / "stroma" / "tile_05_copy.png").write_bytes((source / "stroma" / "tile_05.png").read_bytes())
    params = deep_update(copy.deepcopy(TINY_PARAMS), {"data": {"source": f"folder:{source}"}})
    _assert_same_outputs(tmp_path, base_code, params)
