"""Every package the library and its stage scripts import is declared in pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(folders: list[Path]) -> dict[str, Path]:
    """Top-level module name -> first file importing it (absolute imports, anywhere in the file)."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path)
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])]


def declared(extra: str | None = None) -> set[str]:
    return {normalise(requirement.name) for requirement in requirements(extra)}


def pins(text: str) -> dict[str, str]:
    """constraints.txt's ``name==version`` lines (comments and blank lines skipped) by normalised name."""
    found = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, separator, pinned = line.partition("==")
            assert separator and pinned, f"constraints.txt: {line!r} is not name==version"
            found[normalise(name)] = pinned
    return found


def unpinned(requirements: list[Requirement], pinned: dict[str, str]) -> list[str]:
    """Requirements constraints.txt leaves open or pins outside pyproject's range."""
    problems = []
    for requirement in requirements:
        version_pinned = pinned.get(normalise(requirement.name))
        if version_pinned is None:
            problems.append(f"{requirement.name}: not in constraints.txt")
        elif not requirement.specifier.contains(version_pinned, prereleases=True):
            problems.append(f"{requirement.name}: constraints.txt pins {version_pinned}, pyproject asks {requirement.specifier}")
    return problems


def undeclared(folders: list[Path], allowed: set[str]) -> list[str]:
    distributions = packages_distributions()
    problems = []
    for module, path in imported_modules(folders).items():
        if module in sys.stdlib_module_names or module == "__future__" or module == "histosynth":
            continue
        if (ROOT / "tests" / f"{module}.py").is_file():  # the tests' own helpers
            continue
        names = {normalise(d) for d in distributions.get(module, [])}
        if not names & allowed:
            problems.append(f"{module} (imported by {path.name}; installed as {sorted(names) or 'nothing'})")
    return problems


def test_library_and_stage_imports_are_declared_dependencies() -> None:
    assert undeclared([ROOT / "src", ROOT / "stages"], declared()) == []


def test_test_imports_are_declared_with_the_test_extra() -> None:
    assert undeclared([ROOT / "tests"], declared("test")) == []


def test_the_check_sees_an_undeclared_import(tmp_path: Path) -> None:
    (tmp_path / "uses_mkdocs.py").write_text("def f():\n    import mkdocs\n")  # installed, not a library dependency
    assert [problem.split()[0] for problem in undeclared([tmp_path], declared())] == ["mkdocs"]


def test_every_dependency_is_pinned_within_its_declared_range() -> None:
    """`make` installs with -c constraints.txt: a dependency added to pyproject.toml without a pin would
    float, and with it the bytes of the outputs (pandas writes its version into every Parquet file)."""
    assert unpinned(requirements("test"), pins((ROOT / "constraints.txt").read_text(encoding="utf-8"))) == []
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_the_pin_check_sees_a_missing_and_an_out_of_range_pin() -> None:
    declared_here = [Requirement("pandas>=2.2"), Requirement("torch==2.15.0"), Requirement("typer>=0.12")]
    assert unpinned(declared_here, pins("# header\npandas==2.1.0\ntorch==2.15.0\n")) == [
        "pandas: constraints.txt pins 2.1.0, pyproject asks >=2.2", "typer: not in constraints.txt"]


def test_the_installed_libraries_are_the_pinned_ones() -> None:
    """This environment runs what constraints.txt pins (a venv made by hand may not: `make install`)."""
    different = []
    for name, pinned in pins((ROOT / "constraints.txt").read_text(encoding="utf-8")).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # pinned for another platform's wheels (e.g. CUDA libraries) or an optional path
        if installed.split("+")[0] != pinned.split("+")[0]:
            different.append(f"{name}: installed {installed}, pinned {pinned}")
    assert different == [], "reinstall with `make install` (pip install -c constraints.txt -e '.[test]')"
