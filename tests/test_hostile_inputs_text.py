"""Text from users and packages is neutralised where people read it (issue 20, histosynth.neutralise):
a file name cannot forge a line of `verify`'s output or of a log, an escape sequence never reaches
the terminal raw, and a class name cannot run as a spreadsheet formula in metadata.csv, while the
Parquet metadata and the SQL dumps keep the exact text."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_run import invoke, one_error
from histosynth.entry import EXIT_INPUT, EXIT_OK, EXIT_VERIFY_FINDINGS
from histosynth.neutralise import Block, NeutralFormatter, csv_cell, for_terminal, restore_csv_cell
from histosynth.package import load_package
from histosynth.package.sql.readback import load_sqlite_dump, read_records
from histosynth.package.stage import build_package
from histosynth.package.verify import verify_package
from package_inputs import package_params, write_package_inputs
from test_ingest_folder import save_images
from test_verify import built, package  # noqa: F401 (fixtures: a small package, a private copy to damage)

QUICK = settings(max_examples=200, deadline=None, derandomize=True, database=None)
ESC = "\x1b[2J\x1b[31m"  # clear the screen, then red


def raw_controls(text: str) -> list[str]:
    """Control characters (but newlines) in ``text``."""
    return sorted({c for c in text if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f})


def test_a_file_name_cannot_forge_verifys_ok_line(package: Path) -> None:
    forged = "x.png\nOK: package: 99 files intact"  # a file name holds no '/'; a script checking ^OK: is fooled
    (package / "images" / "na" / forged).write_bytes(b"planted")
    (package / "images" / "na" / f"{ESC}y.png").write_bytes(b"planted")
    code, output = invoke("verify", str(package))
    lines = output.splitlines()
    assert code == EXIT_VERIFY_FINDINGS
    assert not [line for line in lines if line.startswith("OK:")]
    assert "extra: images/na/x.png\\x0aOK: package: 99 files intact" in lines
    assert "extra: images/na/\\x1b[2J\\x1b[31my.png" in lines
    assert raw_controls(output) == [] and lines[-1].startswith("FAILED: ")


def test_an_error_line_shows_escape_sequences_escaped(tmp_path: Path) -> None:
    nowhere = tmp_path / f"pack{ESC}age"
    code, output = invoke("verify", str(nowhere))
    assert code == EXIT_INPUT
    assert one_error(output) == f"error: {tmp_path}/pack\\x1b[2J\\x1b[31mage: does not exist; give the folder of a " \
                                "package (e.g. data/package)"
    assert raw_controls(output) == []


def test_ingest_log_lines_escape_names(tmp_path: Path) -> None:
    source = tmp_path / "cells"
    red = f"red{ESC}cells"
    save_images(source / red, 6, "RGB", ".png", seed=1)
    save_images(source / "blue", 6, "RGB", ".png", seed=2)
    forged = "notes\n12:00:00 ERROR histosynth: forged.txt"
    (source / "blue" / forged).write_text("not an image")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"source": f"folder:{source}", "image_size": 28,
                                               "val_fraction": 0.2, "test_fraction": 0.2}}))
    code, output = invoke("ingest", "--params", str(params), "--out", str(tmp_path / "real"))
    assert code == EXIT_OK, output
    assert raw_controls(output) == []
    assert not [line for line in output.splitlines() if line.startswith("12:00:00")]
    assert "blue/notes\\x0a12:00:00 ERROR histosynth: forged.txt" in output
    assert "red\\x1b[2J\\x1b[31mcells" in output  # the class table and the log lines name it escaped
    assert set(load_manifest_names(tmp_path / "real")) == {"blue", red}  # the data keep the exact name


def load_manifest_names(real: Path) -> list[str]:
    from histosynth.manifest import read_manifest

    return list(read_manifest(real)["class_name"].unique())


FORMULA_CLASSES = ("=cmd|' /C calc'!A0", "+SUM(1+1)", "@HYPERLINK(\"http://x\")", "-2+3", "\tTab", "'=quoted")


@pytest.fixture(scope="module")
def formula_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("formula")
    inputs = write_package_inputs(root / "inputs", classes=FORMULA_CLASSES, per_split=1, n_synthetic=1)
    out = root / "package"
    build_package(package_params(link="copy"), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics, out,
                  revision="test")
    return out


def test_class_names_cannot_run_as_spreadsheet_formulas(formula_package: Path) -> None:
    with open(formula_package / "metadata.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    shown = {row["class_name"] for row in rows}
    assert shown == {"'" + name for name in FORMULA_CLASSES}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())
    exact = load_package(formula_package).metadata  # Parquet: the exact names
    assert set(exact["class_name"]) == set(FORMULA_CLASSES)
    engine = load_sqlite_dump(formula_package / "sql" / "sqlite.sql")
    try:
        dumped = {row["name"] for row in read_records(engine, "sqlite.sql")["class_names"]}
    finally:
        engine.dispose()
    assert dumped == set(FORMULA_CLASSES)
    assert verify_package(formula_package, deep=True).ok  # the CSV still holds the Parquet's rows
    assert "has an extra `'` in front" in (formula_package / "README.md").read_text(encoding="utf-8")


def test_a_card_without_such_names_says_nothing_of_it(built: Path) -> None:
    assert "extra `'`" not in (built / "README.md").read_text(encoding="utf-8")


@QUICK
@given(st.text())
def test_any_text_round_trips_through_a_csv_cell(text: str) -> None:
    cell = csv_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert restore_csv_cell(cell) == text
    buf = io.StringIO()
    csv.writer(buf).writerow([cell])
    assert restore_csv_cell(next(csv.reader(io.StringIO(buf.getvalue())))[0]) == text


@QUICK
@given(st.text() | st.binary().map(os.fsdecode))
def test_any_text_is_one_safe_line_for_a_terminal(text: str) -> None:
    shown = for_terminal(text)
    assert "\n" not in shown and raw_controls(shown) == []
    assert not any(0x202a <= ord(c) <= 0x202e or 0x2066 <= ord(c) <= 0x2069 for c in shown)
    shown.encode("utf-8")  # printable: no lone surrogates
    if text.isprintable() and "\\" not in text:
        assert shown == text


def test_the_log_formatter_escapes_arguments_and_keeps_numbers_and_tables() -> None:
    formatter = NeutralFormatter("%(message)s")

    def shown(msg: str, *args: object) -> str:
        return formatter.format(logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None))

    assert shown("skipped %s (%d of %.1f)", "a\nb\x1b[0m", 3, 2.5) == "skipped a\\x0ab\\x1b[0m (3 of 2.5)"
    assert shown("class %r", "x\ny") == "class 'x\\ny'"
    assert shown("table:\n%s", Block("a  1\nb\x1b  2")) == "table:\na  1\nb\\x1b  2"
    assert shown("%s", Path("/tmp/a\rb")) == "/tmp/a\\x0db"
