"""The image store: decoded images on disk, read a batch at a time (histosynth.image_store), and
the block-wise reading of .npz members (histosynth.data.npz_blocks)."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from histosynth import image_store
from histosynth.augment.stage import augment
from histosynth.config.augment import AugmentParams
from histosynth.config.data import DataParams
from histosynth.data import npz_blocks
from histosynth.data.ingest import ingest
from histosynth.dataset import load_image_set
from histosynth.image_sets import open_image_set, subset
from histosynth.errors import DataError
from histosynth.image_store import StoredImages, StoreWriter, batches, concat, take, write_store

from conftest import write_image_folder


def random_images(n: int, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_store_reads_back_any_rows_in_any_order(tmp_path):
    images = random_images(50)
    store = write_store(iter([images[:7], *images[7:]]), images.shape[1:], expected=50)  # batches and single images
    assert len(store) == 50
    for rows in ([0], [49], [3, 4, 5, 6], [10, 2, 2, 40, 41, 0], list(range(50))[::-1], []):
        assert np.array_equal(store.read(rows), images[rows])
    assert np.array_equal(store.read_range(45, 60), images[45:])
    with pytest.raises(IndexError):
        store.read([50])


def test_stored_images_index_like_the_array(tmp_path):
    images = random_images(30, seed=1)
    stored = StoredImages.of(write_store(images, images.shape[1:]))
    assert stored.shape == images.shape and len(stored) == 30 and stored.dtype == np.uint8
    mask = np.arange(30) % 3 == 0
    for key in (0, -1, 29, slice(3, 17), slice(None, None, -4), np.array([5, 1, 5, 29]), [2, 3], mask):
        assert np.array_equal(stored[key], images[key]), key
    assert np.array_equal(np.asarray(stored), images)
    view = stored.take(np.array([8, 3, 20, 21, 22]))
    assert np.array_equal(np.asarray(view), images[[8, 3, 20, 21, 22]])
    assert np.array_equal(view.take(view_mask := np.array([True, False, True, True, False])),
                          images[[8, 3, 20, 21, 22]][view_mask])
    with pytest.raises(IndexError):
        stored[30]
    with pytest.raises(IndexError):
        stored[np.ones(29, bool)]


def test_concat_take_and_batches_treat_arrays_and_stores_alike():
    a, b, c = random_images(5, seed=2), random_images(7, seed=3), random_images(4, seed=4)
    chained = concat([StoredImages.of(write_store(a, a.shape[1:])), b, StoredImages.of(write_store(c, c.shape[1:]))])
    expected = np.concatenate([a, b, c])
    assert isinstance(chained, StoredImages) and np.array_equal(np.asarray(chained), expected)
    index = np.array([15, 0, 6, 5, 11, 12, 4])
    assert np.array_equal(np.asarray(take(chained, index)), expected[index])
    assert np.array_equal(take(expected, index), expected[index])  # an array stays an array
    assert isinstance(concat([a, b]), np.ndarray)
    starts = [(start, batch.copy()) for start, batch in batches(chained, 6)]
    assert [s for s, _ in starts] == [0, 6, 12]
    assert np.array_equal(np.concatenate([batch for _, batch in starts]), expected)
    empty = StoredImages.of(None, (8, 8, 3))
    assert empty.shape == (0, 8, 8, 3) and np.asarray(empty).shape == (0, 8, 8, 3)


def _read_in_child(stored: StoredImages) -> np.ndarray:
    return np.asarray(stored)


def test_stored_images_pickle_to_another_process_as_paths():
    images = random_images(20, seed=5)
    stored = StoredImages.of(write_store(images, images.shape[1:])).take(np.arange(3, 17))
    assert len(pickle.dumps(stored)) < 2000  # paths and row numbers, not pixels
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert np.array_equal(pool.apply(_read_in_child, (stored,)), images[3:17])


def test_the_folder_goes_with_the_store_and_stale_folders_with_their_process(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(image_store.tempfile, "tempdir", None)  # re-read TMPDIR
    store = write_store(random_images(3), (8, 8, 3))
    folder = store.path.parent
    assert folder.parent == tmp_path and store.path.stat().st_size == 3 * 8 * 8 * 3
    del store
    gc.collect()
    assert not folder.exists()

    # a store made by a process that was killed outright
    code = ("import os, numpy as np; from histosynth.image_store import write_store; "
            "s = write_store(np.zeros((2, 4, 4, 3), np.uint8), (4, 4, 3)); print(s.path.parent, flush=True); "
            "os._exit(0)")  # no clean-up at all
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    left = Path(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                               check=True).stdout.strip())
    assert left.is_dir()
    alive = write_store(random_images(1), (8, 8, 3))  # the next store made here clears it away
    assert not left.exists() and alive.path.exists()


def test_a_store_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(image_store.tempfile, "tempdir", None)
    with pytest.raises(DataError, match="GiB free, but 1000000000000 decoded images of 224x224 px need .* TMPDIR"):
        StoreWriter((224, 224, 3), expected=10**12)
    assert list(tmp_path.iterdir()) == []


def test_open_image_set_has_the_pixels_of_load_image_set(tmp_path):
    root = write_image_folder(tmp_path / "real", {"train": 4, "val": 2}, size=16)
    for split in ("train", "val", None):
        loaded, opened = load_image_set(root, split), open_image_set(root, split)
        assert isinstance(opened.images, StoredImages)
        assert np.array_equal(np.asarray(opened.images), loaded.images)
        assert np.array_equal(opened.labels, loaded.labels) and opened.class_names == loaded.class_names
    half = subset(open_image_set(root, "train"), np.array([True, False] * 6))
    assert np.array_equal(np.asarray(half.images), load_image_set(root, "train").images[::2])
    none = subset(open_image_set(root, "train"), np.zeros(12, bool))  # a mask that keeps nothing
    assert len(none) == 0 and none.images.shape == (0, 16, 16, 3) and np.asarray(none.images).shape == (0, 16, 16, 3)


@pytest.mark.parametrize("compressed", [True, False])
def test_npz_rows_stream_a_block_at_a_time(tmp_path, monkeypatch, compressed):
    rng = np.random.default_rng(0)
    arrays = {"x_images": rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8),
              "g_images": rng.integers(0, 256, (50, 16, 16), dtype=np.uint8), "x_labels": np.arange(400)[:, None]}
    path = tmp_path / "set.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    assert npz_blocks.read_header(path, "x_images").shape == (400, 32, 32, 3)
    assert np.array_equal(npz_blocks.read_array(path, "x_labels"), arrays["x_labels"])
    for rows in (np.arange(400), np.array([0, 5, 6, 399]), np.array([], np.int64), np.arange(100, 300, 7)):
        got = list(npz_blocks.read_rows(path, "x_images", rows))
        joined = np.concatenate(got) if got else np.zeros((0, 32, 32, 3), np.uint8)
        assert np.array_equal(joined, arrays["x_images"][rows])
    assert np.array_equal(np.concatenate(list(npz_blocks.read_rows(path, "g_images", np.arange(50)))),
                          arrays["g_images"])

    monkeypatch.setattr(npz_blocks, "BLOCK_BYTES", 64 << 10)  # 1.2 MB of images in blocks of 64 kB
    tracemalloc.start()
    for _ in npz_blocks.read_rows(path, "x_images", np.arange(0, 400, 2)):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 400 << 10, peak


def test_npz_member_cut_short_is_an_error(tmp_path):
    path = tmp_path / "set.npz"
    np.savez(path, x=np.zeros((100, 8, 8, 3), np.uint8))
    cut = tmp_path / "cut.npz"
    with zipfile.ZipFile(cut, "w") as archive:  # a member whose header promises more rows than it holds
        with zipfile.ZipFile(path) as source:
            whole = source.read("x.npy")
        archive.writestr("x.npy", whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="ends after"):
        list(npz_blocks.read_rows(cut, "x", np.arange(100)))


def _medmnist_like(root: Path, train: int, size: int) -> None:
    """bloodmnist_<size>.npz laid out like MedMNIST's: ``train`` random RGB train images, 16 val and test."""
    rng = np.random.default_rng(train)
    arrays = {}
    for split, n in (("train", train), ("val", 16), ("test", 16)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 8).astype(np.uint8)[:, None]  # BloodMNIST has 8 classes
    root.mkdir(parents=True)
    np.savez_compressed(root / f"bloodmnist_{size}.npz", **arrays)


def _traced_peaks(folder: Path, train: int, size: int, trace: bool = True) -> tuple[int, int]:
    """Peak traced allocations of ingest and of augment on a MedMNIST-like file of ``train`` images."""
    _medmnist_like(folder / "raw", train, size)
    peaks = []
    for run in (lambda: ingest(DataParams(source="medmnist:bloodmnist", root=str(folder / "raw"), image_size=size),
                               folder / "real"),
                lambda: augment(AugmentParams(per_class=16), folder / "real", folder / "aug", folder / "preview")):
        if not trace:
            run()
            continue
        tracemalloc.start()
        try:
            run()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return (peaks[0], peaks[1]) if trace else (0, 0)


def test_ingest_and_augment_memory_does_not_grow_with_the_images(tmp_path, monkeypatch):
    """Four times the images cost no more than a fifth of their extra pixels: the code before held a
    whole split (ingest: +14 MiB here; augment: +28 MiB) where this holds a block and a few images."""
    monkeypatch.setattr(npz_blocks, "BLOCK_BYTES", 256 << 10)  # else one block would hold these whole splits
    size, n = 128, 100
    _traced_peaks(tmp_path / "warm-up", 16, size, trace=False)  # imports and caches: once, outside the comparison
    small, large = _traced_peaks(tmp_path / "n", n, size), _traced_peaks(tmp_path / "4n", 4 * n, size)
    extra_pixels = 3 * n * size * size * 3
    for stage, before, after in zip(("ingest", "augment"), small, large):
        assert after - before < extra_pixels / 5, (f"{stage}: peak {before / 2**20:.1f} MiB for {n} images, "
                                                   f"{after / 2**20:.1f} MiB for {4 * n}")
