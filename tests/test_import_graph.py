"""The house plan, read from the import graph (tests/import_graph.py): no import cycle between the
parts of histosynth, a ground floor of shared vocabulary that imports no stage, the package's
database code fed by the package, and one progress-bar factory."""

from __future__ import annotations

import ast
from pathlib import Path

import import_graph
from import_graph import ROOT, cycles, direct_imports, group, group_edges, modules

# The ground floor: the modules every stage may import, which import none of the stages' packages.
STAGE_PACKAGES = {f"{ROOT}.{name}" for name in ("data", "augment", "generators", "generate", "curate",
                                               "classifier", "qa", "package", "benchmark", "report", "publish",
                                               "pipeline")}
# The command line, and the summary that reads the outputs of qa, benchmark and report (its end of `dvc repro`).
ABOVE_EVERYTHING = {f"{ROOT}.cli", f"{ROOT}.summary"}


def ground_floor() -> set[str]:
    return {name for name in modules() if group(name) not in STAGE_PACKAGES | ABOVE_EVERYTHING}


def test_no_import_cycle_between_the_parts_of_histosynth() -> None:
    edges = group_edges()
    found = cycles(edges)
    explained = {" <-> ".join(component): [imp for (a, b), imps in edges.items()
                                           if a in component and b in component for imp in imps[:2]]
                 for component in found}
    assert not explained, f"import cycles (part <-> part: some of the imports behind them): {explained}"


GENERATORS = f"{ROOT}.generators"
GAN_FAMILY = f"{GENERATORS}.gan"
FAMILIES = (GAN_FAMILY, f"{GENERATORS}.diffusion")
REGISTRY = f"{GENERATORS}.registry"
SHARED_TRAINING = f"{GENERATORS}.training"


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_gan_family_and_the_registry_import_the_gans() -> None:
    importers = {name: sorted(imported for imported in direct_imports(name) if _within(imported, GAN_FAMILY))
                 for name in modules() if not _within(name, GAN_FAMILY) and name != REGISTRY}
    assert not {name: found for name, found in importers.items() if found}


def test_the_shared_training_tools_import_no_family_and_no_family_imports_the_registry() -> None:
    upward = {}
    for name in modules():
        imported = direct_imports(name)
        if _within(name, SHARED_TRAINING):
            upward[name] = sorted(i for i in imported if i == REGISTRY or any(_within(i, f) for f in FAMILIES))
        elif any(_within(name, family) for family in FAMILIES):
            upward[name] = sorted(i for i in imported if i == REGISTRY)
    assert set(upward) >= {f"{SHARED_TRAINING}.run", f"{GAN_FAMILY}.family", f"{GENERATORS}.diffusion.family"}
    assert not {name: found for name, found in upward.items() if found}


def test_the_ground_floor_imports_no_stage() -> None:
    floor = ground_floor()
    assert {f"{ROOT}.manifest", f"{ROOT}.md5sums", f"{ROOT}.torch_runtime", f"{ROOT}.progress",
            f"{ROOT}.model_record", f"{ROOT}.fsutil", f"{ROOT}.config.loader", ROOT} <= floor
    upstairs = {name: sorted(group(imported) for imported in direct_imports(name) if imported not in floor)
                for name in sorted(floor)}
    assert not {name: found for name, found in upstairs.items() if found}


def test_the_package_database_imports_neither_qa_nor_the_generators() -> None:
    sql = {name for name in modules() if name.startswith(f"{ROOT}.package.sql")}
    reached = import_graph.closure(sql)
    assert not {name for name in reached if group(name) in {f"{ROOT}.qa", f"{ROOT}.generators"}}


def test_no_module_uses_the_public_lazy_attributes_of_histosynth() -> None:
    """``histosynth.load_package`` is for users: the import graph does not follow it (import_graph's
    docstring), so no module of histosynth may use it."""
    for module in modules().values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == ROOT and node.level == 0:
                assert "load_package" not in {alias.name for alias in node.names}, module.name
            if isinstance(node, ast.Attribute) and node.attr == "load_package" and \
                    isinstance(node.value, ast.Name) and node.value.id == ROOT:
                raise AssertionError(f"{module.name} uses histosynth.load_package")


def test_every_progress_bar_comes_from_the_factory() -> None:
    """Only histosynth.progress makes tqdm bars, so every bar obeys HISTOSYNTH_PROGRESS."""
    drawing = []
    for module in modules().values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"))
        if any(isinstance(node, (ast.Import, ast.ImportFrom)) and "tqdm" in (
                getattr(node, "module", None) or "", *(alias.name for alias in node.names))
               for node in ast.walk(tree)):
            drawing.append(module.name)
    assert drawing == [f"{ROOT}.progress"]


def test_the_graph_reader_finds_cycles_and_resolves_imports(tmp_path: Path) -> None:
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]
    assert cycles([("a", "b"), ("b", "c")]) == []
    # `from histosynth import schema_errors` imports that module, not the package's lazy attributes
    assert f"{ROOT}.schema_errors" in direct_imports(f"{ROOT}.manifest")
    assert f"{ROOT}.package.load" not in direct_imports(f"{ROOT}.manifest")
    # TYPE_CHECKING imports never run
    assert f"{ROOT}.package.torch_data" not in {
        name for name in direct_imports(f"{ROOT}.package.load", skip_functions=True)}
