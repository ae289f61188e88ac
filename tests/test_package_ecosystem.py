"""A package opened with the ecosystem's own tools, not histosynth: Croissant metadata read by
mlcroissant, torchvision's ImageFolder, Hugging Face datasets' imagefolder builder, pandas.

Each reader must give back exactly the package's rows (per split and source) and pixels. The
package is built from fixtures (tests/package_inputs.py) with curated synthetic images, so the
curation columns carry values and nulls. Nothing here touches the network: Hugging Face runs
offline with its cache in a temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_run import invoke
from histosynth import load_package
from histosynth.entry import EXIT_OK, EXIT_VERIFY_FINDINGS
from histosynth.images import read_png_rgb
from histosynth.manifest import read_manifest, write_manifest
from histosynth.package.schema import COLUMNS, metadata_jsonl_bytes, read_metadata_parquet
from histosynth.package.stage import build_package
from package_inputs import AWKWARD_CLASSES, package_params, refresh_qa_verdict, write_package_inputs
from test_hostile_package import restamp_top_md5sums

PER_SPLIT, N_SYNTHETIC = 2, 3


def curate(synthetic: Path) -> None:
    """Give the synthetic manifest curation scores, as the curate stage writes them."""
    manifest = read_manifest(synthetic)
    n = len(manifest)
    manifest["confidence"] = np.linspace(0.5, 0.99, n)
    manifest["realism"] = np.linspace(0.1, 2.0, n)
    manifest["copy_ratio"] = [1.25 if i % 2 else None for i in range(n)]
    manifest["curation"] = ["kept" if i % 3 else "filled" for i in range(n)]
    write_manifest(manifest, synthetic)


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ecosystem")
    inputs = write_package_inputs(root / "inputs", per_split=PER_SPLIT, n_synthetic=N_SYNTHETIC)
    curate(inputs.synthetic)
    refresh_qa_verdict(inputs)
    params = package_params(name="histosynth-test", version="2.1.0", licence="CC BY 4.0 for the synthetic images")
    build_package(params, inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics, root / "package",
                  revision="test")
    return root / "package"


@pytest.fixture(scope="module")
def metadata(package_dir: Path) -> pd.DataFrame:
    return read_metadata_parquet(package_dir / "metadata.parquet")


def plain(value: object) -> object:
    """A record value as Python text or number (mlcroissant gives text as bytes), None when missing."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return None if value is None or pd.isna(value) else value


def rows_of(metadata: pd.DataFrame) -> dict[str, dict[str, object]]:
    return {row["id"]: {column: plain(row[column]) for column in COLUMNS} for row in metadata.to_dict("records")}


def test_croissant_is_valid_and_its_records_are_the_metadata_rows(package_dir: Path, metadata: pd.DataFrame) -> None:
    import mlcroissant as mlc

    dataset = mlc.Dataset(jsonld=package_dir / "croissant.json")  # raises on any validation error
    assert dataset.metadata.name == "histosynth-test" and dataset.metadata.version == "2.1.0"
    assert any("CC BY 4.0 for the synthetic images" in licence for licence in dataset.metadata.license)
    assert "@misc{histosynth_test_2_1_0" in dataset.metadata.cite_as

    records = list(dataset.records("images"))
    read = {plain(r["images/id"]): {column: plain(r[f"images/{column}"]) for column in COLUMNS} for r in records}
    assert len(records) == len(metadata) and read == rows_of(metadata)
    counts = Counter((r["split"], r["source"]) for r in read.values())
    assert counts == Counter(zip(metadata["split"], metadata["source"]))
    assert counts[("train", "synthetic")] == N_SYNTHETIC * len(AWKWARD_CLASSES)
    for record in records:
        path = package_dir / plain(record["images/file_path"])
        assert np.array_equal(np.asarray(record["images/image"]), read_png_rgb(path))

    classes = [{key.split("/")[1]: plain(value) for key, value in r.items()} for r in dataset.records("classes")]
    assert [c["class_name"] for c in sorted(classes, key=lambda c: c["label"])] == list(AWKWARD_CLASSES)


def test_croissant_checksums_are_those_of_the_files(package_dir: Path) -> None:
    document = json.loads((package_dir / "croissant.json").read_text(encoding="utf-8"))
    files = [item for item in document["distribution"] if item["@type"] == "cr:FileObject"]
    assert {item["contentUrl"] for item in files} == {
        "README.md", "metadata.csv", "metadata.parquet", "metadata.jsonl", "sql/mysql.sql", "sql/postgresql.sql",
        "sql/sqlite.sql"}
    for item in files:
        data = (package_dir / item["contentUrl"]).read_bytes()
        assert item["md5"] == hashlib.md5(data).hexdigest() and item["sha256"] == hashlib.sha256(data).hexdigest()
    assert str(package_dir) not in json.dumps(document)  # no local path


def test_torchvision_image_folder_over_a_split(package_dir: Path, metadata: pd.DataFrame) -> None:
    from torchvision.datasets import ImageFolder

    # The README's three lines.
    meta = pd.read_parquet(package_dir / "metadata.parquet")
    val_files = set(meta.loc[meta["split"] == "val", "file_path"])
    val = ImageFolder(package_dir / "images", is_valid_file=lambda p: os.path.relpath(p, package_dir) in val_files)

    expected = metadata[metadata["split"] == "val"]
    got = {os.path.relpath(path, package_dir): val.classes[target] for path, target in val.samples}
    assert got == dict(zip(expected["file_path"], expected["class_folder"]))
    image, target = val[0]
    assert np.array_equal(np.asarray(image), read_png_rgb(val.samples[0][0])) and target == val.samples[0][1]


def test_hugging_face_imagefolder_loads_a_split_with_labels_and_source(package_dir: Path, metadata: pd.DataFrame,
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import load_dataset

    # The README's line, with the cache kept in tmp_path.
    train = load_dataset("imagefolder", data_files=str(package_dir / "metadata.jsonl"), split="train",
                         filters=[("split", "==", "train")], cache_dir=str(tmp_path / "cache"))

    expected = metadata[metadata["split"] == "train"]
    assert train.num_rows == len(expected)
    assert Counter(train["source"]) == Counter(expected["source"])
    got = train.remove_columns("image").to_pandas()
    assert {row["id"]: {c: plain(row[c]) for c in COLUMNS} for row in got.to_dict("records")} == rows_of(expected)
    first = train[0]
    assert first["label"] == expected["label"].iloc[0] and first["class_name"] == expected["class_name"].iloc[0]
    assert np.array_equal(np.asarray(first["image"].convert("RGB")), read_png_rgb(package_dir / first["file_path"]))


def test_pandas_reads_either_metadata_file(package_dir: Path) -> None:
    package = load_package(package_dir)
    parquet = pd.read_parquet(package_dir / "metadata.parquet")
    pd.testing.assert_frame_equal(parquet, package.metadata)
    # A class called "NA" stays a string only without pandas' default missing-value names.
    csv = pd.read_csv(package_dir / "metadata.csv", keep_default_na=False, na_values={"seed": [""]})
    assert csv["class_name"].tolist() == parquet["class_name"].tolist() and csv["id"].tolist() == parquet["id"].tolist()
    assert (package_dir / "metadata.jsonl").read_bytes() == metadata_jsonl_bytes(parquet)


@pytest.fixture
def package_copy(package_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(package_dir, tmp_path / "package"))


def test_verify_catches_a_croissant_file_that_disagrees_with_md5sums(package_copy: Path) -> None:
    dump = package_copy / "sql" / "mysql.sql"
    dump.write_text(dump.read_text(encoding="utf-8") + "-- edited\n", encoding="utf-8")
    sums = (package_copy / "MD5SUMS").read_text().splitlines()
    new_md5 = hashlib.md5(dump.read_bytes()).hexdigest()
    (package_copy / "MD5SUMS").write_text("".join(
        (f"{new_md5}  sql/mysql.sql" if line.endswith("  sql/mysql.sql") else line) + "\n" for line in sums))
    code, output = invoke("verify", str(package_copy))
    assert code == EXIT_VERIFY_FINDINGS
    assert "problem: croissant.json and MD5SUMS disagree on 1 file(s), e.g. sql/mysql.sql" in output.splitlines()


def test_verify_requires_the_croissant_file(package_copy: Path) -> None:
    (package_copy / "croissant.json").unlink()
    code, output = invoke("verify", str(package_copy))
    assert code == EXIT_VERIFY_FINDINGS and "missing: croissant.json" in output.splitlines()


def test_deep_verify_compares_the_json_lines_rows(package_copy: Path) -> None:
    jsonl = package_copy / "metadata.jsonl"
    jsonl.write_text(jsonl.read_text(encoding="utf-8").replace('"split": "val"', '"split": "train"', 1),
                     encoding="utf-8")
    restamp_top_md5sums(package_copy)
    assert invoke("verify", str(package_copy))[0] == EXIT_OK  # consistent checksums: only --deep reads the rows
    code, output = invoke("verify", "--deep", str(package_copy))
    assert code == EXIT_VERIFY_FINDINGS
    assert any(line.startswith("problem: metadata.jsonl and metadata.parquet do not hold the same rows (first at row")
               for line in output.splitlines()), output
