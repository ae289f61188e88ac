"""What a stage definition holds: its name, the params it reads, the folders it reads and writes
(named slots the runner gets and the command line can move), what DVC tracks of them, and the
function that runs it.

Paths are relative to a project root (histosynth.paths): the DVC stage runs in the project's
folder, :func:`histosynth.pipeline.run_pipeline` in any folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from histosynth.config import PARAMS_FILE, Params, load_params

OutputKind = Literal["outs", "metrics", "plots"]


@dataclass(frozen=True)
class Slot:
    """A folder or file the stage's runner reads (an input) or writes (an output).

    ``path``: where it lies in a project (None: the runner chooses from params, e.g. train's data by
    ``gan.train_on``). ``option``: the command line's option that moves it (``--out``). ``command_line``
    False: from the command line it is neither read nor written unless its option is given (ingest
    writes no duplicates report, QA searches no augmented folder for copies).
    """

    name: str
    path: Path | None
    option: str
    help: str
    output: bool = False
    command_line: bool = True


@dataclass(frozen=True)
class Tracked:
    """An output DVC tracks (``outs``, ``metrics`` or ``plots`` in dvc.yaml), with its options."""

    path: Path
    kind: OutputKind = "outs"
    cache: bool = True
    persist: bool = False
    plot: Mapping[str, str] = field(default_factory=dict)  # x, y of a plot

    def dvc_options(self) -> dict[str, object]:
        options: dict[str, object] = {} if self.cache else {"cache": False}
        if self.persist:
            options["persist"] = True
        return {**options, **self.plot}


@dataclass(frozen=True)
class StageIO:
    """The paths one run of a stage reads and writes: the project ``root`` and each slot's path
    (None: not read or written in this run)."""

    root: Path
    paths: Mapping[str, Path | None]
    upstream: Path | None = None
    produced_here: frozenset[Path] = frozenset()

    def __getitem__(self, slot: str) -> Path | None:
        return self.paths[slot]

    def locate(self, relative: Path) -> Path:
        """Where the project's ``relative`` input lies: in ``root``, unless this run does not make it, it
        is not in ``root`` and an ``upstream`` project is given (:func:`histosynth.pipeline.run_pipeline`)."""
        here = self.root / relative
        if self.upstream is None or here.exists() or any(relative == made or made in relative.parents
                                                         for made in self.produced_here):
            return here
        return self.upstream / relative


Runner = Callable[[Params, StageIO], object]


@dataclass(frozen=True)
class Stage:
    """One pipeline stage, defined once: DVC's stage script, the CLI command of the same name, the tests
    and the studies all run it through :mod:`histosynth.pipeline.run`."""

    name: str
    summary: str  # the CLI command's help
    run: Runner
    params: tuple[str, ...]  # sections or section.key, as dvc.yaml lists them
    slots: tuple[Slot, ...]
    deps: tuple[Path, ...]  # the data DVC tracks as inputs (code deps follow from what the runner imports)
    outputs: tuple[Tracked, ...]
    reads_project: bool = False  # the runner reads the project folder as a whole (the report)

    @property
    def sections(self) -> tuple[str, ...]:
        """The params.yaml sections the stage reads: they must be in the file, as DVC demands."""
        return tuple(dict.fromkeys(key.split(".")[0] for key in self.params))

    @property
    def script(self) -> Path:
        return Path("stages") / f"{self.name}.py"

    @property
    def command(self) -> str:
        return f"python {self.script.as_posix()}"

    def slot(self, name: str) -> Slot:
        return next(slot for slot in self.slots if slot.name == name)

    def inputs(self) -> Iterator[Slot]:
        return (slot for slot in self.slots if not slot.output)

    def output_slots(self) -> Iterator[Slot]:
        return (slot for slot in self.slots if slot.output)

    def load_params(self, path: Path | str = PARAMS_FILE) -> Params:
        """params.yaml, read and validated; the sections this stage reads must be there."""
        return load_params(path, reader=self.name, sections=self.sections)


def index(stages: Sequence[Stage]) -> dict[str, Stage]:
    return {stage.name: stage for stage in stages}
