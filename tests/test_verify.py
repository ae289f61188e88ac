"""`histosynth verify`: an intact package passes; every kind of damage fails, naming the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from histosynth.cli import app
from histosynth.entry import EXIT_INPUT
from histosynth.output_policy import MARKER
from histosynth.package.stage import build_package
from package_inputs import package_params, write_package_inputs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    inputs = write_package_inputs(root / "inputs", per_split=2, n_synthetic=3)
    out = root / "package"
    build_package(package_params(link="copy"), inputs.real, inputs.synthetic, inputs.gan, inputs.qa_metrics, out,
                  revision="test")
    return out


@pytest.fixture
def package(built: Path, tmp_path: Path) -> Path:
    """A private copy of the package to damage."""
    return Path(shutil.copytree(built, tmp_path / "package"))


def verify(path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output.splitlines()


def first_image(package: Path, folder: str = "na") -> Path:
    return sorted((package / "images" / folder).glob("*.png"))[0]


def test_an_intact_package_passes(package: Path) -> None:
    code, lines = verify(package)
    assert code == 0, lines
    n_files = sum(1 for p in package.rglob("*") if p.is_file() and p.name != MARKER)  # the marker is no package file
    assert lines == [f"OK: {package}: {n_files} files intact"]


def flip_a_byte(package: Path) -> str:
    image = first_image(package)
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    return image.relative_to(package).as_posix()


def remove_an_image(package: Path) -> str:
    image = first_image(package, "stroma_it_s_loose")
    image.unlink()
    return image.relative_to(package).as_posix()


def add_an_image(package: Path) -> str:
    extra = package / "images" / "na" / "zzz_not_listed.png"
    shutil.copyfile(first_image(package), extra)
    return extra.relative_to(package).as_posix()


def edit_metadata_csv(package: Path) -> str:
    path = package / "metadata.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",test,", ",train,", 1), encoding="utf-8")
    return "metadata.csv"


def edit_the_card(package: Path) -> str:
    with open(package / "README.md", "a", encoding="utf-8") as card:
        card.write("\nAll images are real.\n")
    return "README.md"


def edit_a_class_md5sums(package: Path) -> str:
    path = package / "images" / "epithelium_dab" / "MD5SUMS"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:]))
    return "images/epithelium_dab/MD5SUMS"


def edit_a_dump(package: Path) -> str:
    path = package / "sql" / "postgresql.sql"
    path.write_text(path.read_text(encoding="utf-8").replace("INSERT INTO", "-- INSERT INTO", 1), encoding="utf-8")
    return "sql/postgresql.sql"


@pytest.mark.parametrize(("damage", "kind"), [
    (flip_a_byte, "modified"),
    (remove_an_image, "missing"),
    (add_an_image, "extra"),
    (edit_metadata_csv, "modified"),
    (edit_the_card, "modified"),
    (edit_a_class_md5sums, "modified"),
    (edit_a_dump, "modified"),
])
def test_damage_fails_and_names_the_file(package: Path, damage: Callable[[Path], str], kind: str) -> None:
    path = damage(package)
    code, lines = verify(package)
    assert code == 1
    assert f"{kind}: {path}" in lines
    assert lines[-1].startswith(f"FAILED: {package}:")


def test_every_damaged_file_is_listed(package: Path) -> None:
    damaged = {flip_a_byte(package), remove_an_image(package), add_an_image(package), edit_metadata_csv(package)}
    code, lines = verify(package)
    assert code == 1
    named = {line.split(": ", 1)[1] for line in lines if line.split(": ", 1)[0] in ("missing", "extra", "modified")}
    assert named == damaged
    assert any(line.startswith("problem: metadata.csv and metadata.parquet do not hold the same rows (first at row ")
               and line.endswith("column split)") for line in lines), lines


def test_a_missing_class_folder_and_checksum_file_are_listed(package: Path) -> None:
    shutil.rmtree(package / "images" / "na")
    (package / "MD5SUMS").unlink()
    code, lines = verify(package)
    assert code == 1
    assert "missing: MD5SUMS" in lines and "missing: images/na/MD5SUMS" in lines
    assert sum(line.startswith("missing: images/na/") for line in lines) == 1 + 3 * 2 + 3


def test_a_folder_that_is_no_package_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"not a package")
    for path, message in ((tmp_path, "not a histosynth package"), (tmp_path / "nowhere", "does not exist"),
                          (tmp_path / "holiday.jpg", "is not a folder")):
        result = CliRunner().invoke(app, ["verify", str(path)])
        assert result.exit_code == EXIT_INPUT
        assert isinstance(result.exception, SystemExit)  # no traceback
        assert message in result.output


def test_without_its_parquet_metadata_the_class_checksums_still_count(package: Path) -> None:
    (package / "metadata.parquet").unlink()
    flipped = flip_a_byte(package)
    code, lines = verify(package)
    assert code == 1
    assert "missing: metadata.parquet" in lines and f"modified: {flipped}" in lines
    assert not any(line.startswith("extra: ") for line in lines)


def test_default_verify_loads_neither_torch_nor_sqlalchemy(built: Path) -> None:
    """A user's `histosynth verify` starts in about a second: only --deep needs SQLAlchemy (and torch)."""
    from histosynth.package.verify import DUMPS
    from histosynth.package.sql import DIALECTS

    assert DUMPS == tuple(f"sql/{name}.sql" for name in DIALECTS)
    code = ("import sys; from typer.testing import CliRunner; from histosynth.cli import app; "
            f"result = CliRunner().invoke(app, ['verify', {str(built)!r}]); "
            "print(result.exit_code, 'torch' in sys.modules, 'sqlalchemy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr
