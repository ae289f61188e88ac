"""Shared fixtures: small, real image sets written the way the pipeline writes them."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core: one torch thread each, also in the processes
    # tests start (a stage's explicit thread count, e.g. gan.threads, still applies there), and an
    # OpenMP thread that waits for a core the other worker holds sleeps instead of spinning (read when
    # torch loads its OpenMP runtime: before the import below).
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Each worker, and every process it starts, on a core of its own: the stages size their process
    # pools by the cores they may run on (histosynth.parallel.usable_cores), so a tiny pipeline run
    # here trains its feature nets and CAS classifiers in the stage's own process instead of
    # spawning workers that each import torch for a few seconds of work; their results do not depend
    # on the worker count. Measured on the tiny pipeline: 56 CPU seconds instead of 77-88, the same bytes.
    _cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    _worker_count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if 0 < _worker_count <= len(_cores):
        os.sched_setaffinity(0, {_cores[int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw")) % len(_cores)]})

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from histosynth.fsutil import unique_safe_names
from histosynth.images import encode_png, md5_bytes
from histosynth.manifest import write_manifest
from histosynth.md5sums import write_md5sums

TINY_CLASSES = ("red blobs", "green stripes", "blue noise")

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def textured_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A class-specific texture: class 0 red blobs, 1 green stripes, 2 blue speckle, 3+ mixes."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.full((size, size, 3), 200.0, np.float32) + rng.normal(0, 8, (size, size, 3))
    if label % 3 == 0:
        for _ in range(3):
            cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(size / 8, size / 4)]
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = (180, 40, 60)
    elif label % 3 == 1:
        period = rng.uniform(4, 8)
        stripes = (np.sin((xx + rng.uniform(0, 8)) * 2 * np.pi / period) > 0)
        img[stripes] = (60, 160, 70)
    else:
        img[rng.random((size, size)) < 0.4] = (50, 70, 190)
    img[..., label // 3 % 3] *= 0.8  # separates classes 3.. from 0..2
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image_folder(
    root: Path,
    n_per_class: dict[str, int],
    classes: tuple[str, ...] = TINY_CLASSES,
    size: int = 32,
    seed: int = 0,
    source: str = "real",
) -> Path:
    """Write ``root/<split>/<class>/*.png`` plus a manifest, as ingest does."""
    rng = np.random.default_rng(seed)
    rows = []
    folders = unique_safe_names(classes)
    for split, n in n_per_class.items():
        for label, (name, folder) in enumerate(zip(classes, folders)):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                data = encode_png(textured_image(label, size, rng))
                rel = f"{split}/{folder}/{split}_{label}_{i:04d}.png"
                (root / rel).write_bytes(data)
                rows.append(dict(id=f"{split}_{label}_{i:04d}", path=rel, class_name=name, label=label,
                                 split=split, source=source, md5=md5_bytes(data), origin=f"fixture:{seed}"))
    write_manifest(pd.DataFrame(rows), root)
    return root


def write_synthetic(folder: Path, images_by_label: dict[int, list[np.ndarray]],
                    classes: tuple[str, ...] = TINY_CLASSES) -> Path:
    """``<class folder>/<id>.png`` with MD5SUMS per folder and a manifest, as the generate stage writes."""
    rows = []
    for label, (name, sub) in enumerate(zip(classes, unique_safe_names(classes))):
        (folder / sub).mkdir(parents=True)
        sums = []
        for i, image in enumerate(images_by_label[label]):
            data, image_id = encode_png(image), f"syn_{sub}_{i:06d}"
            (folder / sub / f"{image_id}.png").write_bytes(data)
            sums.append((f"{image_id}.png", md5_bytes(data)))
            rows.append(dict(id=image_id, path=f"{sub}/{image_id}.png", class_name=name, label=label,
                             split="train", source="synthetic", md5=sums[-1][1], origin="test"))
        write_md5sums(folder / sub, sums)
    write_manifest(pd.DataFrame(rows), folder)
    return folder


def builtin_tiles() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The embedded demo's splits as {split: (images (N, H, W, 3) uint8, labels (N,))}."""
    from histosynth.config import params_from_mapping
    from histosynth.data.sources.builtin_ihc import load_builtin

    source = load_builtin(params_from_mapping({"data": {"source": "builtin:ihc"}}).data)
    out = {}
    for split in ("train", "val", "test"):
        part = source.read_split(split)
        out[split] = (np.stack([part.image(i) for i in range(len(part.labels))]), part.labels)
    return out


@pytest.fixture
def tiny_real_dir(tmp_path: Path) -> Path:
    """3 classes x (24 train, 8 val, 8 test) images of 32x32 in the ingest layout."""
    return write_image_folder(tmp_path / "real", {"train": 24, "val": 8, "test": 8})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), files of slow tests first: `--dist loadfile` hands whole files out
    in this order, so the long ones (pipeline runs) start at once instead of ending the run on one worker
    while the other idles. Files whose every test is slow lead, then files with some slow tests."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    by_file: dict[str, list[bool]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item.get_closest_marker("slow") is not None)
    rank = {path: 0 if all(slow) else 1 if any(slow) else 2 for path, slow in by_file.items()}
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])
