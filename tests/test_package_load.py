"""load_package on a built package: metadata, ImageSet, streaming images, torch Dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import histosynth
from histosynth.errors import DataError
from histosynth.images import read_png_rgb
from histosynth.package.stage import build_package
from package_inputs import AWKWARD_CLASSES, package_params, write_package_inputs

PER_SPLIT, N_SYNTHETIC, SIZE = 2, 3, 28


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("load")
    inputs = write_package_inputs(root / "inputs", per_split=PER_SPLIT, n_synthetic=N_SYNTHETIC, size=SIZE)
    build_package(package_params(), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics, root / "package",
                  revision="test")
    return root / "package"


def test_metadata_and_class_names_round_trip(package_dir: Path) -> None:
    package = histosynth.load_package(package_dir)
    assert package.class_names == list(AWKWARD_CLASSES)
    pd.testing.assert_frame_equal(package.metadata, pd.read_parquet(package_dir / "metadata.parquet"))


def test_image_set_filters_and_keeps_labels(package_dir: Path) -> None:
    package = histosynth.load_package(package_dir)
    test_set = package.image_set(split="test")
    n_classes = len(AWKWARD_CLASSES)
    assert test_set.images.shape == (n_classes * PER_SPLIT, SIZE, SIZE, 3) and test_set.images.dtype == np.uint8
    assert test_set.labels.tolist() == sorted(list(range(n_classes)) * PER_SPLIT)
    assert test_set.class_names == AWKWARD_CLASSES
    rows = package.metadata[package.metadata["split"] == "test"]
    for image, path in zip(test_set.images, rows["file_path"]):
        assert np.array_equal(image, read_png_rgb(package_dir / path))

    synthetic = package.image_set(source="synthetic")
    assert len(synthetic) == n_classes * N_SYNTHETIC
    assert np.bincount(synthetic.labels).tolist() == [N_SYNTHETIC] * n_classes
    train = package.image_set(split="train")
    assert len(train) == n_classes * (PER_SPLIT + N_SYNTHETIC)


def test_images_streams_rows_with_pixels(package_dir: Path) -> None:
    package = histosynth.load_package(package_dir)
    seen = 0
    for row, image in package.images(source="real"):
        assert row["source"] == "real"
        assert np.array_equal(image, read_png_rgb(package_dir / row["file_path"]))
        seen += 1
    assert seen == len(AWKWARD_CLASSES) * 3 * PER_SPLIT


def test_torch_dataset_trains_through_a_dataloader(package_dir: Path) -> None:
    dataset = histosynth.load_package(package_dir).torch_dataset(split="train")
    loader = DataLoader(dataset, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, len(AWKWARD_CLASSES)))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    labels = []
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, SIZE, SIZE) and 0 <= x.min() and x.max() <= 1
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        labels += y.tolist()
    assert sorted(labels) == sorted(list(range(len(AWKWARD_CLASSES))) * (PER_SPLIT + N_SYNTHETIC))


def test_torch_dataset_applies_transform(package_dir: Path) -> None:
    dataset = histosynth.load_package(package_dir).torch_dataset(split="val", transform=lambda x: x[:, :8, :8])
    image, label = dataset[0]
    assert image.shape == (3, 8, 8) and label == 0


def test_not_a_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a histosynth package"):
        histosynth.load_package(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        histosynth.load_package(tmp_path / "nowhere")


def test_unknown_split_is_a_clear_error(package_dir: Path) -> None:
    with pytest.raises(DataError, match="unknown split 'validation'"):
        histosynth.load_package(package_dir).image_set(split="validation")
