"""The package database and its dumps without a server: contents, determinism, check_dumps, export-sql.

Loading into real servers is tests/test_sql_servers.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import torch
from sql_samples import RUN, TRICKY_CLASSES, gan_record, qa_metrics, tricky_metadata
from typer.testing import CliRunner

from histosynth.cli import app
from histosynth.entry import EXIT_INPUT
from histosynth.errors import ConfigError, DataError
from histosynth.generators.gan.models import build_discriminator, build_generator
from histosynth.package.database import package_database
from histosynth.package.networks import describe_gan
from histosynth.package.schema import METADATA_PARQUET, metadata_parquet_bytes
from histosynth.package.sql import DIALECTS, check_dumps, write_dumps


def write_package(root: Path, metadata: pd.DataFrame) -> Path:
    """The parts of a package the SQL layer reads: metadata.parquet and sql/*.sql."""
    root.mkdir(parents=True, exist_ok=True)
    (root / METADATA_PARQUET).write_bytes(metadata_parquet_bytes(metadata))
    write_dumps(package_database(metadata, gan_record(), qa_metrics()), root / "sql")
    return root


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_package(tmp_path_factory.mktemp("package"), tricky_metadata())


def sqlite_rows(package: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(":memory:")
    connection.executescript((package / "sql" / "sqlite.sql").read_bytes().decode("utf-8"))
    return connection.execute(sql).fetchall()


def test_dumps_are_byte_identical_for_the_same_input(package: Path, tmp_path: Path) -> None:
    again = write_package(tmp_path / "again", tricky_metadata())
    for dialect in DIALECTS:
        assert (again / "sql" / f"{dialect}.sql").read_bytes() == (package / "sql" / f"{dialect}.sql").read_bytes()
    changed = tricky_metadata()
    changed.loc[0, "md5"] = "f" * 32
    other = write_package(tmp_path / "other", changed)
    assert (other / "sql" / "sqlite.sql").read_bytes() != (package / "sql" / "sqlite.sql").read_bytes()


def test_training_parameters_come_from_the_record(package: Path) -> None:
    columns = "g_optimizer, d_optimizer, loss, batch_size, epochs, g_lr, d_lr, beta1, beta2, lr_step_epochs, " \
              "lr_step_gamma, diffaugment, weight_decay, train_images, gan"
    assert sqlite_rows(package, f"SELECT {columns} FROM training_parameters") == [
        ("adam", "adam", "bce", 64, 100, 0.0002, 0.0002, 0.5, 0.999, 10, 0.9, "color,translation", 0.0, 600, 1)]
    other = sqlite_rows(package, "SELECT json_extract(other_params, '$.threads'), "
                                 "json_type(other_params, '$.arch') FROM training_parameters")
    assert other == [(1, None)]  # the rest of the params are kept; arch lives in gan_architectures


def test_qa_metrics_carry_the_gate_verdicts(package: Path) -> None:
    figures = qa_metrics()["classes"]
    rows = sqlite_rows(package, "SELECT c.name, q.metric, q.value, q.gate, q.threshold, q.passed "
                                "FROM qa_metrics q JOIN class_names c ON c.id = q.class_name")
    by_key = {(name, metric): rest for name, metric, *rest in rows}
    for name in TRICKY_CLASSES:
        assert by_key[(name, "kl")] == [figures[name]["kl"], "colour_kl", 0.05, figures[name]["passed"]]
        assert by_key[(name, "fid")] == [figures[name]["fid"], "fid", None, None]  # gate not evaluated
        assert by_key[(name, "coverage")] == [None, None, None, None]  # NaN is stored as NULL
        assert by_key[(name, "fid_real_floor")] == [None, None, None, None]
    passed = sqlite_rows(package, "SELECT name, qa_passed FROM class_names ORDER BY id")
    assert passed == [(name, int(figures[name]["passed"])) for name in TRICKY_CLASSES]


@pytest.mark.parametrize("arch,image_size", [("dcgan", 32), ("sagan", 32)])
def test_gan_documents_describe_the_built_networks(arch: str, image_size: int) -> None:
    record = {**gan_record(arch=arch), "image_size": image_size}
    rng = torch.random.get_rng_state()
    generator_doc, discriminator_doc = describe_gan(record)
    assert torch.equal(rng, torch.random.get_rng_state())  # describing draws no random numbers
    generator = build_generator(arch, n_classes=len(TRICKY_CLASSES), image_size=image_size, latent_dim=16, width=8)
    discriminator = build_discriminator(arch, n_classes=len(TRICKY_CLASSES), image_size=image_size, width=8)
    for doc, network in ((generator_doc, generator), (discriminator_doc, discriminator)):
        assert doc["network"]["parameters"] == sum(p.numel() for p in network.parameters())

        def nodes(node: dict) -> list[dict]:
            return [node, *(n for child in node.get("modules", []) for n in nodes(child))]

        tree = nodes(doc["network"])
        listed = [m for name, m in network.named_modules() if "parametrizations" not in name]
        assert [n["type"] for n in tree] == [type(m).__name__.removeprefix("Parametrized") for m in listed]
        spectral = sum("SpectralNorm" in n.get("parametrizations", {}).get("weight", []) for n in tree)
        assert (spectral > 0) == (arch == "sagan")
    convs = [n for n in nodes(discriminator_doc["network"]) if n["type"] == "Conv2d"]
    assert convs[0]["hyperparameters"]["in_channels"] == 3


def test_fresh_dumps_pass_the_check(package: Path) -> None:
    assert check_dumps(package, tricky_metadata()) == []


def _one_problem_names(problems: list[str], *words: str) -> None:
    assert any(all(word in problem for word in words) for problem in problems), problems


def test_check_finds_rows_removed_added_or_changed_in_the_metadata(package: Path) -> None:
    metadata = tricky_metadata()
    removed = metadata.drop(index=3).reset_index(drop=True)
    _one_problem_names(check_dumps(package, removed), "not in the metadata", repr(metadata["id"][3]))
    added_row = metadata.iloc[[-1]].assign(id="syn_extra", file_path=lambda f: "images/" + f["class_folder"]
                                           + "/syn_extra.png", latent_index=99)
    added = pd.concat([metadata, added_row], ignore_index=True)
    _one_problem_names(check_dumps(package, added), "missing from the images table", "'syn_extra'")
    changed = metadata.copy()
    changed.loc[5, "md5"] = "0" * 32
    changed.loc[6, "seed"] = 8
    problems = check_dumps(package, changed)
    _one_problem_names(problems, "2 images differing from the metadata", f"{metadata['id'][5]!r} (md5)",
                       f"{metadata['id'][6]!r} (seed)")
    # mysql/postgresql dumps no longer match either: they are rendered again from the metadata
    _one_problem_names(problems, "sql/mysql.sql line")
    renamed = metadata.assign(class_name=metadata["class_name"].replace({"SELECT": "select"}))
    _one_problem_names(check_dumps(package, renamed),
                       "class_names differs from the metadata: label 5: 'SELECT' (folder select) in the dump, 'select'")


def _edited_copy(package: Path, tmp_path: Path, dialect: str, edit) -> Path:
    copy = write_package(tmp_path / "copy", tricky_metadata())
    path = copy / "sql" / f"{dialect}.sql"
    path.write_bytes(edit(path.read_bytes()))
    return copy


def test_check_finds_edited_dumps(package: Path, tmp_path: Path) -> None:
    metadata = tricky_metadata()
    md5 = metadata["md5"][4].encode()

    copy = _edited_copy(package, tmp_path / "a", "mysql", lambda data: data.replace(md5, b"f" * 32, 1))
    problems = check_dumps(copy, metadata)
    assert len(problems) == 1
    _one_problem_names(problems, "sql/mysql.sql line")

    copy = _edited_copy(package, tmp_path / "b", "postgresql", lambda data: data.rsplit(b"\n", 2)[0] + b"\n")
    _one_problem_names(check_dumps(copy, metadata), "sql/postgresql.sql line")

    copy = _edited_copy(package, tmp_path / "c", "postgresql", lambda data: data.rstrip(b"\n"))
    _one_problem_names(check_dumps(copy, metadata), "sql/postgresql.sql line")

    copy = _edited_copy(package, tmp_path / "d", "sqlite", lambda data: data.replace(md5, b"f" * 32, 1))
    _one_problem_names(check_dumps(copy, metadata), "sql/sqlite.sql: 1 image differing", "(md5)")

    copy = _edited_copy(package, tmp_path / "e", "sqlite", lambda data: data[: len(data) // 2])
    _one_problem_names(check_dumps(copy, metadata), "does not load into SQLite")

    evil = tmp_path / "written-by-the-dump.db"
    copy = _edited_copy(package, tmp_path / "f", "sqlite", lambda data: data + f"VACUUM INTO '{evil}';\n".encode())
    _one_problem_names(check_dumps(copy, metadata), "does not load into SQLite: it attaches files")
    assert not evil.exists()  # a dump from elsewhere cannot write files

    (copy / "sql" / "sqlite.sql").unlink()
    problems = check_dumps(copy, metadata)
    _one_problem_names(problems, "sql/sqlite.sql is missing")


def test_export_sql_gives_the_package_dump(package: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "exported.sql"
    result = runner.invoke(app, ["export-sql", str(package), "--dialect", "postgresql", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (package / "sql" / "postgresql.sql").read_bytes()
    result = runner.invoke(app, ["export-sql", str(package), "--dialect", "mysql"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == (package / "sql" / "mysql.sql").read_bytes()


def test_export_sql_refuses_a_dump_that_disagrees_with_the_metadata(package: Path, tmp_path: Path) -> None:
    copy = write_package(tmp_path / "copy", tricky_metadata())
    (copy / METADATA_PARQUET).write_bytes(metadata_parquet_bytes(tricky_metadata().drop(index=0)
                                                                 .reset_index(drop=True)))
    result = CliRunner().invoke(app, ["export-sql", str(copy), "--dialect", "sqlite"])
    assert result.exit_code == EXIT_INPUT
    assert "not in the metadata" in result.stderr and "rebuild the package" in result.stderr


def test_a_package_without_synthetic_images_or_qa(tmp_path: Path) -> None:
    metadata = tricky_metadata(n_synthetic=0)
    db = package_database(metadata, gan_record(), None)
    assert db.records["gan_architectures"][0]["checkpoint_md5"] is None
    assert db.records["qa_metrics"] == []
    assert {row["qa_passed"] for row in db.records["class_names"]} == {None}
    paths = write_dumps(db, tmp_path, dialects=["sqlite"])
    assert list(paths) == ["sqlite"]


def test_inconsistent_inputs_are_refused_with_a_reason(tmp_path: Path) -> None:
    metadata = tricky_metadata()
    long_name = tricky_metadata(classes=("x" * 300, "y"))
    with pytest.raises(DataError, match="at most 255"):
        package_database(long_name, gan_record(classes=("x" * 300, "y")), None)
    two_runs = metadata.copy()
    two_runs.loc[two_runs["source"] == "synthetic", "generator_run"] = [RUN, "f" * 32] * 11
    with pytest.raises(DataError, match="2 generator runs"):
        package_database(two_runs, gan_record(), None)
    with pytest.raises(DataError, match="the package and the GAN disagree"):
        package_database(metadata, gan_record(classes=tuple(reversed(TRICKY_CLASSES))), None)
    with pytest.raises(DataError, match="'ghost' is not in the package"):
        package_database(metadata, gan_record(), {"classes": {"ghost": {"kl": 0.1}}})
    with pytest.raises(ConfigError, match="unknown SQL dialect 'oracle'"):
        write_dumps(package_database(metadata, gan_record(), None), tmp_path, dialects=["sqlite", "oracle"])
    assert not list(tmp_path.iterdir())  # nothing written


def test_dumps_rendered_in_parallel_processes_are_the_same_bytes(package: Path, tmp_path: Path, monkeypatch) -> None:
    from histosynth.package.sql import dump

    monkeypatch.setattr(dump, "PARALLEL_FROM_IMAGES", 0)  # the small test set takes the big-package path
    metadata = pd.read_parquet(package / METADATA_PARQUET)
    paths = write_dumps(package_database(metadata, gan_record(), qa_metrics()), tmp_path)
    assert {name: paths[name].read_bytes() for name in DIALECTS} == \
        {name: (package / "sql" / f"{name}.sql").read_bytes() for name in DIALECTS}
