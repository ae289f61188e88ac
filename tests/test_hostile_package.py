"""A package from elsewhere, crafted or broken: every reader ends quickly with one clear line.

Rows of issue 14: 1 (a dump that never ends), 2 (a link to /dev/zero, a FIFO), 5 (image bombs,
wrong sizes, absurd metadata sizes), 12 (schema errors read as one line), 13 (a class folder
linked to elsewhere). The hang tests carry a timeout: on failure they stop instead of hanging.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cli_run import invoke, one_error
from histosynth.entry import EXIT_INPUT, EXIT_OK, EXIT_VERIFY_FINDINGS
from histosynth.errors import DataError
from histosynth.images import md5_file
from histosynth.md5sums import write_md5sums
from histosynth.package import load_package
from histosynth.package.schema import metadata_csv_bytes, metadata_parquet_bytes
from test_verify import built, package  # noqa: F401 (fixtures: a small package, a private copy to damage)

# The statement of issue 14 (recursive, refused outright) and a cross join of 10^10 rows that
# needs no recursion (stopped by the work budget).
ENDLESS_QUERIES = {
    "recursive": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c;\n",
    "cross_join": "WITH t(x) AS (VALUES " + ",".join(f"({i})" for i in range(100)) + ") "
                  "SELECT count(*) FROM t a, t b, t c, t d, t e;\n",
}


def first_image(package: Path, folder: str = "na", kind: str = "train_") -> Path:
    """The first real train (or, with kind "syn_", synthetic) image of a class folder."""
    return sorted((package / "images" / folder).glob(f"{kind}*.png"))[0]


def restamp_top_md5sums(package: Path) -> None:
    """Make croissant.json's checksums and the top-level MD5SUMS agree with the files, as an attacker
    who edits a dump would."""
    croissant = json.loads((package / "croissant.json").read_text(encoding="utf-8"))
    for item in croissant["distribution"]:
        if item["@type"] == "cr:FileObject":
            data = (package / item["contentUrl"]).read_bytes()
            item.update(md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest())
    (package / "croissant.json").write_text(json.dumps(croissant), encoding="utf-8")
    names = ["README.md", "metadata.csv", "metadata.parquet", "metadata.jsonl", "sql/mysql.sql", "sql/postgresql.sql",
             "sql/sqlite.sql", "croissant.json"]
    write_md5sums(package, [(name, md5_file(package / name)) for name in names])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("query", sorted(ENDLESS_QUERIES))
def test_a_dump_that_never_ends_is_refused_by_verify_and_export(package: Path, query: str) -> None:
    with open(package / "sql" / "sqlite.sql", "a", encoding="utf-8") as dump:
        dump.write(ENDLESS_QUERIES[query])
    code, output = invoke("verify", str(package))  # the MD5SUMS catch it without loading it
    assert code == EXIT_VERIFY_FINDINGS and "modified: sql/sqlite.sql" in output.splitlines()
    restamp_top_md5sums(package)
    code, output = invoke("verify", "--deep", str(package))
    assert code == EXIT_VERIFY_FINDINGS
    assert any(line.startswith("problem: sql/sqlite.sql: ") and "refused" in line for line in output.splitlines())
    code, output = invoke("export-sql", str(package), "--dialect", "mysql")
    assert code == EXIT_INPUT
    assert "sqlite.sql" in one_error(output) and "refused" in one_error(output)


@pytest.mark.timeout(60)
def test_links_fifos_and_devices_are_reported_and_never_read(package: Path) -> None:
    image = first_image(package, kind="syn_")
    image.unlink()
    image.symlink_to("/dev/zero")
    fifo = first_image(package, "stroma_it_s_loose")
    fifo.unlink()
    os.mkfifo(fifo)
    code, output = invoke("verify", str(package))
    lines = output.splitlines()
    assert code == EXIT_VERIFY_FINDINGS
    assert f"problem: {image.relative_to(package).as_posix()}: a symbolic link to /dev/zero; a package holds " \
           "plain files only (not followed, not read)" in lines
    assert any(line.startswith(f"problem: {fifo.relative_to(package).as_posix()}: a FIFO") for line in lines)
    assert f"missing: {image.relative_to(package).as_posix()}" in lines
    with pytest.raises(DataError, match="a symbolic link, not a plain file"):
        list(load_package(package).images(source="synthetic"))
    with pytest.raises(DataError, match="a FIFO, not a plain file"):
        load_package(package).image_set(source="real")


@pytest.mark.timeout(60)
def test_a_dump_or_metadata_linked_to_a_device_is_refused(package: Path) -> None:
    dump = package / "sql" / "sqlite.sql"
    dump.unlink()
    dump.symlink_to("/dev/zero")
    code, output = invoke("export-sql", str(package), "--dialect", "sqlite")
    assert code == EXIT_INPUT and "a symbolic link, not a plain file" in one_error(output)
    code, output = invoke("verify", "--deep", str(package))
    assert code == EXIT_VERIFY_FINDINGS and "problem: sql/sqlite.sql: a symbolic link to /dev/zero" in output
    metadata = package / "metadata.parquet"
    metadata.unlink()
    os.mkfifo(metadata)
    with pytest.raises(DataError, match="metadata.parquet: a FIFO, not a plain file"):
        load_package(package)


def replace_metadata(package: Path, metadata: pd.DataFrame) -> None:
    (package / "metadata.parquet").write_bytes(metadata_parquet_bytes(metadata))
    (package / "metadata.csv").write_bytes(metadata_csv_bytes(metadata))


def test_a_decompression_bomb_is_refused_before_decoding(package: Path) -> None:
    Image.new("1", (9500, 9500)).save(first_image(package))  # 90 Mpx in a few kB, over PIL's limit
    with pytest.raises(DataError, match="decompression bomb") as err:
        load_package(package).image_set(split="train")
    assert "check the package with `histosynth verify`" in str(err.value)


def test_an_image_of_another_size_than_its_metadata_is_refused(package: Path) -> None:
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(first_image(package))
    with pytest.raises(DataError, match=r"30x30 px, not the 28x28 px its metadata gives"):
        load_package(package).image_set(split="train")


def test_absurd_metadata_sizes_are_refused_before_allocating(package: Path) -> None:
    metadata = load_package(package).metadata.assign(width=200_000, height=200_000)
    replace_metadata(package, metadata)
    loaded = load_package(package)
    with pytest.raises(DataError, match=r"need .* GiB, more than half this machine's memory"):
        loaded.image_set()
    with pytest.raises(DataError, match=r"28x28 px, not the 200000x200000 px"):
        next(iter(loaded.images()))


def test_benchmark_cli_reports_a_broken_package_in_one_line(package: Path, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(first_image(package))
    params = tmp_path / "params.yaml"
    params.write_text("benchmark: {seeds: [0], steps: 1, eval_every: 1}\naugment: {}\n")
    code, output = invoke("benchmark", "--params", str(params), "--package", str(package),
                          "--augmented", str(tmp_path / "nowhere"), "--out", str(tmp_path / "bench"))
    assert code == EXIT_INPUT and "30x30 px" in one_error(output)
    assert not (tmp_path / "bench").exists()


def test_schema_errors_are_one_readable_line(package: Path) -> None:
    metadata = load_package(package).metadata
    metadata.loc[2, "file_path"] = "../../etc/passwd"
    metadata.loc[3, "md5"] = "not-an-md5"
    replace_metadata(package, metadata)
    with pytest.raises(DataError) as err:
        load_package(package)
    message = str(err.value)
    assert "\n" not in message and '"column"' not in message and "schema_context" not in message
    assert "file_path must be images/<class_folder>/<id>.png: fails for 1 row(s), e.g. row 3: " in message
    assert "file_path '../../etc/passwd'" in message
    assert "column md5: str_matches('^[0-9a-f]{32}$'): fails for 1 row(s), e.g. row 4: md5 'not-an-md5'" in message


def test_a_class_folder_linked_elsewhere_is_not_loaded(package: Path, tmp_path: Path) -> None:
    outside = Path(shutil.copytree(package / "images" / "na", tmp_path / "outside"))
    shutil.rmtree(package / "images" / "na")
    (package / "images" / "na").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match=r"images/na: a symbolic link, not a folder"):
        load_package(package)
    code, output = invoke("verify", str(package))
    assert code == EXIT_VERIFY_FINDINGS and "problem: images/na: a symbolic link to " in output


def test_default_verify_trusts_md5sums_for_the_dumps_and_deep_reads_them(package: Path) -> None:
    dump = package / "sql" / "postgresql.sql"
    dump.write_text(dump.read_text(encoding="utf-8").replace("INSERT INTO", "-- INSERT INTO", 1), encoding="utf-8")
    restamp_top_md5sums(package)
    assert invoke("verify", str(package))[0] == EXIT_OK
    code, output = invoke("verify", "--deep", str(package))
    assert code == EXIT_VERIFY_FINDINGS and "problem: sql/postgresql.sql line " in output
