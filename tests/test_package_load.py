"""load_package: a package on disk -> metadata, ImageSet, streaming images, torch Dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import histosynth
from conftest import textured_image
from histosynth.errors import DataError
from histosynth.images import encode_png, md5_bytes, read_png_rgb
from histosynth.package.schema import COLUMN_TYPES, metadata_parquet_bytes

CLASSES = ("tumour 'A'", "stroma")


def write_small_package(root: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for label, (name, folder) in enumerate(zip(CLASSES, ("tumour_a", "stroma"))):
        for source, split, n in (("real", "train", 3), ("real", "test", 2), ("synthetic", "train", 4)):
            for i in range(n):
                image_id = f"{source[:3]}_{split}_{label}_{i}"
                data = encode_png(textured_image(label, 16, rng))
                path = root / "images" / folder / f"{image_id}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                synthetic = source == "synthetic"
                rows.append(dict(id=image_id, file_path=f"images/{folder}/{image_id}.png", class_name=name,
                                 class_folder=folder, label=label, source=source, split=split, md5=md5_bytes(data),
                                 width=16, height=16, origin="gan:" + "0" * 32 if synthetic else "fixture",
                                 generator_run="0" * 32 if synthetic else None, arch="dcgan" if synthetic else None,
                                 seed=0 if synthetic else None, latent_index=i if synthetic else None))
    df = pd.DataFrame(rows).astype(COLUMN_TYPES)
    (root / "metadata.parquet").write_bytes(metadata_parquet_bytes(df))
    return df


def test_image_set_filters_and_keeps_labels(tmp_path: Path) -> None:
    expected = write_small_package(tmp_path)
    package = histosynth.load_package(tmp_path)
    assert package.class_names == list(CLASSES)
    assert len(package.metadata) == len(expected)

    test_set = package.image_set(split="test")
    assert test_set.images.shape == (4, 16, 16, 3) and test_set.images.dtype == np.uint8
    assert test_set.labels.tolist() == [0, 0, 1, 1]
    assert test_set.class_names == CLASSES
    first = expected[expected["split"] == "test"].iloc[0]
    assert np.array_equal(test_set.images[0], read_png_rgb(tmp_path / first["file_path"]))

    synthetic = package.image_set(source="synthetic")
    assert len(synthetic) == 8 and set(synthetic.labels.tolist()) == {0, 1}
    assert len(package.image_set(split="val")) == 0


def test_images_streams_rows_with_pixels(tmp_path: Path) -> None:
    write_small_package(tmp_path)
    package = histosynth.load_package(tmp_path)
    seen = 0
    for row, image in package.images(source="real"):
        assert row["source"] == "real"
        assert np.array_equal(image, read_png_rgb(tmp_path / row["file_path"]))
        seen += 1
    assert seen == 10


def test_torch_dataset_trains_through_a_dataloader(tmp_path: Path) -> None:
    write_small_package(tmp_path)
    dataset = histosynth.load_package(tmp_path).torch_dataset(split="train")
    loader = DataLoader(dataset, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    labels = []
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 16, 16) and 0 <= x.min() and x.max() <= 1
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        labels += y.tolist()
    assert sorted(labels) == [0] * 7 + [1] * 7


def test_torch_dataset_applies_transform(tmp_path: Path) -> None:
    write_small_package(tmp_path)
    dataset = histosynth.load_package(tmp_path).torch_dataset(transform=lambda x: x[:, :8, :8])
    image, label = dataset[0]
    assert image.shape == (3, 8, 8) and label == 0


def test_not_a_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a histosynth package"):
        histosynth.load_package(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        histosynth.load_package(tmp_path / "nowhere")


def test_unknown_split_is_a_clear_error(tmp_path: Path) -> None:
    write_small_package(tmp_path)
    with pytest.raises(DataError, match="unknown split 'validation'"):
        histosynth.load_package(tmp_path).image_set(split="validation")
