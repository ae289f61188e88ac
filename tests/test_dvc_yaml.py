"""dvc.yaml against the stage definitions (histosynth.pipeline.stages): each stage's command, params,
data deps and outputs as defined, and code deps that cover every module the stage really imports
(its import closure from its entry point: the stage script and the runner of its definition)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import import_graph
from histosynth.pipeline import NAMES, STAGES, Stage, stage

REPO = Path(__file__).resolve().parents[1]
DEFINITIONS = "histosynth.pipeline.stages"
CODE_ROOTS = ("src/", "stages/")


@pytest.fixture(scope="module")
def dvc_stages() -> dict[str, Any]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def code_files(definition: Stage) -> set[Path]:
    """Every file the stage's code is made of: its script and the import closure from it, where the
    definitions module counts only the imports of this stage's runner (each runner imports its own)."""
    starts = import_graph.file_imports(REPO / definition.script) | \
        import_graph.function_imports(DEFINITIONS, definition.run.__name__)
    modules = import_graph.closure(starts, shallow=frozenset({DEFINITIONS}))
    return {REPO / definition.script, *import_graph.files_of(modules)}


def declared_outputs(entry: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``(kind, path) -> options`` of a dvc.yaml stage's outs, metrics and plots."""
    found = {}
    for kind in ("outs", "metrics", "plots"):
        for item in entry.get(kind) or []:
            path, options = next(iter(item.items())) if isinstance(item, dict) else (item, {})
            found[(kind, path)] = dict(options or {})
    return found


def test_dvc_yaml_has_the_defined_stages(dvc_stages) -> None:
    assert set(dvc_stages) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_command_params_data_and_outputs_are_the_definitions(dvc_stages, name: str) -> None:
    definition, entry = stage(name), dvc_stages[name]
    assert entry["cmd"] == definition.command
    assert sorted(entry.get("params") or []) == sorted(definition.params)
    data_deps = {dep for dep in entry["deps"] if not dep.startswith(CODE_ROOTS)}
    assert data_deps == {dep.as_posix() for dep in definition.deps}
    assert declared_outputs(entry) == {(tracked.kind, tracked.path.as_posix()): tracked.dvc_options()
                                       for tracked in definition.outputs}


@pytest.mark.parametrize("name", NAMES)
def test_code_deps_cover_every_module_the_stage_imports(dvc_stages, name: str) -> None:
    definition = stage(name)
    declared = [REPO / dep for dep in dvc_stages[name]["deps"] if dep.startswith(CODE_ROOTS)]
    needed = code_files(definition)

    def covered(path: Path) -> bool:
        return any(path == dep or dep in path.parents for dep in declared)

    uncovered = sorted(str(path.relative_to(REPO)) for path in needed if not covered(path))
    assert not uncovered, f"dvc.yaml stage {name!r}: its code imports these, which its deps miss: {uncovered}"
    idle = sorted(str(dep.relative_to(REPO)) for dep in declared
                  if not any(path == dep or dep in path.parents for path in needed))
    assert not idle, f"dvc.yaml stage {name!r}: deps that hold none of its code (a change reruns it for nothing): " \
                     f"{idle}"


def test_the_closure_follows_lazy_imports_registries_and_parent_packages() -> None:
    """What the deps check relies on: a function's import, a module named in a string
    (importlib) and the parents of an imported module are followed; TYPE_CHECKING is not."""
    train = code_files(stage("train"))
    src = REPO / "src" / "histosynth"
    assert src / "generators" / "diffusion" / "trainer.py" in train  # importlib.import_module by name
    assert src / "generators" / "training" / "__init__.py" in train  # a parent package runs
    assert src / "report" / "templates" / "report.html.j2" in code_files(stage("report"))  # a package's data
    ingest = code_files(stage("ingest"))
    assert src / "config" / "schema.py" in ingest and src / "pipeline" / "run.py" in ingest
    # each runner imports its own stage's code: ingest's does not bring in the GAN
    assert not any(path.is_relative_to(src / "generators") for path in ingest)
    assert src / "package" / "torch_data.py" in code_files(stage("benchmark"))  # imported inside a method
    assert src / "package" / "load.py" not in ingest  # histosynth.load_package is a lazy attribute


@pytest.mark.parametrize("definition", STAGES, ids=NAMES)
def test_every_dep_and_output_lies_in_a_slot_of_the_stage(definition: Stage) -> None:
    """The runner reads its data deps through its input slots and writes its outputs into its output slots
    (the report reads the project folder as a whole)."""
    inputs = [slot.path for slot in definition.inputs() if slot.path is not None]
    outputs = [slot.path for slot in definition.output_slots()]
    if not definition.reads_project:
        choices = {"train": [Path("data/augmented")]}.get(definition.name, [])  # gan.train_on chooses
        for dep in definition.deps:
            assert any(dep == place or place in dep.parents for place in inputs + choices), dep
    for tracked in definition.outputs:
        assert any(tracked.path == place or place in tracked.path.parents for place in outputs), tracked.path
