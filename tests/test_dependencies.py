"""Every package the library and its stage scripts import is declared in pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

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


def declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return {normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group(0)) for requirement in requirements}


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
