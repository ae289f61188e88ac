"""Running the stage definitions in this process: one stage as its DVC stage script or CLI command
does, or several in pipeline order in a project folder (:func:`run_pipeline`), as the tests and the
studies do. DVC stays the way users run the pipeline; this is the same code without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from histosynth.config import Params
from histosynth.entry import run_guarded, setup_logging
from histosynth.errors import ConfigError, DataError
from histosynth.fsutil import remove_project_temporaries
from histosynth.pipeline.definition import Stage, StageIO
from histosynth.pipeline.stages import NAMES, STAGES, stage

log = logging.getLogger(__name__)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def project_io(definition: Stage, root: Path, upstream: Path | None = None,
               produced_here: frozenset[Path] = frozenset()) -> StageIO:
    """Every slot of ``definition`` at its place in the project ``root``; an input that this run does not
    make and ``root`` does not hold is read from ``upstream`` when one is given."""
    io = StageIO(Path(root), {}, None if upstream is None else Path(upstream), produced_here)
    paths = {slot.name: None if slot.path is None else io.root / slot.path if slot.output else io.locate(slot.path)
             for slot in definition.slots}
    return StageIO(io.root, paths, io.upstream, produced_here)


def command_io(definition: Stage, root: Path, given: Mapping[str, Path | None]) -> StageIO:
    """The slots as a command line gives them: an option's path, else the slot's place under ``root``
    (none for a slot the command line reads or writes only when asked)."""
    root = Path(root)
    paths = {slot.name: given.get(slot.name) or (root / slot.path if slot.command_line and slot.path else None)
             for slot in definition.slots}
    return StageIO(root, paths)


def run_stage(definition: Stage, params: Params, io: StageIO) -> None:
    """Run one stage with ``params`` on the paths of ``io``."""
    definition.run(params, io)


def stage_main(name: str, then: Callable[[], object] | None = None) -> None:
    """A DVC stage script: stage ``name`` on params.yaml, in the project folder DVC runs it in; then
    ``then()`` (what only the DVC stage does, e.g. the report's summary at the end of `dvc repro`)."""
    setup_logging()
    definition = stage(name)

    def job() -> None:
        # params are read inside run_guarded: a bad params.yaml is one error line
        run_stage(definition, definition.load_params(), project_io(definition, Path(".")))
        if then is not None:
            then()

    run_guarded(job)


def select(stages: Iterable[str] | None = None, until: str | None = None) -> tuple[Stage, ...]:
    """The stages to run, in pipeline order: those named in ``stages`` (default all), up to ``until``."""
    wanted = set(NAMES if stages is None else stages)
    for name in [*wanted, *([until] if until else [])]:
        if name not in NAMES:
            raise ConfigError(f"no stage {name!r}; the stages are {', '.join(NAMES)}")
    last = NAMES.index(until) if until is not None else len(NAMES)
    return tuple(definition for position, definition in enumerate(STAGES)
                 if definition.name in wanted and position <= last)


def maker_of(path: Path) -> Stage | None:
    """The stage whose outputs hold the project path ``path``."""
    return next((definition for definition in STAGES for slot in definition.output_slots()
                 if slot.path is not None and (_inside(path, slot.path) or _inside(slot.path, path))), None)


def _check_inputs(definition: Stage, io: StageIO) -> None:
    for dep in definition.deps:
        where = io.locate(dep)
        if not where.exists():
            maker = maker_of(dep)
            made_by = f"; stage `{maker.name}` makes it: run it first" if maker else ""
            raise DataError(f"{where}: not found, and stage `{definition.name}` reads it{made_by}")


def _check_outputs(definition: Stage, io: StageIO) -> None:
    missing = [str(io.root / tracked.path) for tracked in definition.outputs if not (io.root / tracked.path).exists()]
    if missing:
        raise RuntimeError(f"stage `{definition.name}` did not write {', '.join(missing)}, which its definition "
                           "declares (histosynth.pipeline.stages)")


def run_pipeline(params: Params, root: Path | str, *, stages: Iterable[str] | None = None, until: str | None = None,
                 upstream: Path | str | None = None) -> list[str]:
    """Run stages in pipeline order in the project folder ``root``, in this process, each as `dvc repro`
    would after a change to all of them: nothing is skipped, whatever is there already.

    ``stages``: only these (default: every stage); ``until``: stop after this one. ``upstream``: a project
    folder to read an input from when this run does not make it and ``root`` does not hold it (one
    ingest, augment and featurenet shared by the runs of several generators). Before a stage runs, the data it reads must be there (a
    DataError names the stage that makes it); after it, everything its definition declares is. Returns
    the names of the stages run.
    """
    root = Path(root)
    chosen = select(stages, until)
    if upstream is not None and any(definition.reads_project for definition in chosen):
        raise ConfigError("the report reads one project folder as a whole: run it without upstream")
    produced = frozenset(slot.path for definition in chosen for slot in definition.output_slots()
                         if slot.path is not None)
    root.mkdir(parents=True, exist_ok=True)
    remove_project_temporaries(root)
    for definition in chosen:
        io = project_io(definition, root, None if upstream is None else Path(upstream), produced)
        _check_inputs(definition, io)
        started = time.perf_counter()
        log.info("stage %s: running in %s", definition.name, root)
        run_stage(definition, params, io)
        _check_outputs(definition, io)
        log.info("stage %s: done in %.1f s", definition.name, time.perf_counter() - started)
    return [definition.name for definition in chosen]
