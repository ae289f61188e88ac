"""Running the study's grid step by step, resumably.

The steps of a regime: ingest, augment and featurenet in its shared folder; then, per run, the
generator stages (train, generate, curate, qa, package) and the benchmark arms that use its
synthetic images; and once per regime, after its first run, the arms that use none (their
figures do not depend on the generator). Each step, when done, is recorded in its folder's
``study_steps.json`` with a hash of the params it depends on: a step recorded with the same hash
is not run again, so a killed study, started again, goes on where it stopped (the step it was in
is run again: every stage replaces its outputs only when complete). A changed param reruns the
steps that depend on it; an arm added to ``study.arms`` is trained alone, beside the arms already
there. Code changes are not hashed: after one, start with a new study folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from histosynth import paths, progress
from histosynth.config import Params
from histosynth.config.benchmark import GENERATOR_FREE_ARMS
from histosynth.fsutil import atomic_output_dir, atomic_write_text
from histosynth.pipeline import run_pipeline, stage
from histosynth.study.grid import Run, grid, regime_params, run_folder, shared_folder

log = logging.getLogger(__name__)

RECORD = "study_steps.json"
ARMS_DIR = "arms"  # <folder>/arms/<arm>.npy: (classifier seeds, test images, classes) float32 probabilities
ARMS_INFO = "arms.json"  # class names, test labels, training images per arm
SHARED_STAGES = ("ingest", "augment", "featurenet")
GENERATOR_STAGES = ("train", "generate", "curate", "qa", "package")


@dataclass(frozen=True)
class Step:
    folder: Path  # where it is recorded
    name: str
    key: str  # hash of the params it depends on
    run: Callable[[], object]
    complete: Callable[[], bool] = lambda: True  # what the record cannot tell (the arms a folder holds)

    @property
    def title(self) -> str:
        return f"{self.folder.parent.name}/{self.folder.name}: {self.name}"


def params_hash(params: Params, sections: Iterable[str] | None = None, after: str = "",
                without: Iterable[str] = ()) -> str:
    """A hash of ``params`` (the ``sections`` named, default all but ``study``, less the ``without`` ones,
    "section.key") and of the key of the step whose outputs this one reads (``after``): a step runs again
    when what it reads changed."""
    dumped = params.model_dump(mode="json", exclude={"study"})
    chosen = dumped if sections is None else {name: dumped[name] for name in sections}
    for dotted in without:
        section, key = dotted.split(".")
        chosen[section] = {k: v for k, v in chosen[section].items() if k != key}
    return hashlib.sha256(json.dumps([chosen, after], sort_keys=True).encode()).hexdigest()[:16]


def _stage_key(params: Params, name: str, after: str) -> str:
    return params_hash(params, stage(name).sections, after)


def read_record(folder: Path) -> dict[str, str]:
    path = folder / RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # unreadable: every step of the folder runs again
    return record if isinstance(record, dict) else {}


def mark_done(step: Step) -> None:
    atomic_write_text(step.folder / RECORD, json.dumps({**read_record(step.folder), step.name: step.key},
                                                       indent=1, sort_keys=True) + "\n")


def is_done(step: Step) -> bool:
    return read_record(step.folder).get(step.name) == step.key and step.complete()


def steps(base: Params, study_dir: Path) -> list[Step]:
    """Every step of the study in the order they run. A step's key covers the params sections it reads
    and the key of the step before it (the stages of one folder in order, a run's first stage after the
    regime's shared ones), so a changed param reruns the steps it reaches and no others."""
    out: list[Step] = []
    runs = grid(base)
    free = [arm for arm in base.study.arms if arm in GENERATOR_FREE_ARMS]
    synthetic = [arm for arm in base.study.arms if arm not in GENERATOR_FREE_ARMS]
    for regime in base.study.regimes:
        params, shared = regime_params(base, regime), shared_folder(study_dir, regime)
        shared_key = ""
        for name in SHARED_STAGES:
            shared_key = _stage_key(params, name, shared_key)
            out.append(Step(shared, name, shared_key, _stage(params, shared, name)))
        for position, run in enumerate(run for run in runs if run.regime == regime):
            folder, key = run_folder(study_dir, run), shared_key
            for name in GENERATOR_STAGES:
                key = _stage_key(run.params, name, key)
                out.append(Step(folder, name, key, _stage(run.params, folder, name, upstream=shared)))
            if synthetic:
                # not the list of arms: one added is trained alone (``complete``), the others kept
                arms_key = params_hash(run.params, ("benchmark", "augment"), key, without=("benchmark.arms",))
                out.append(Step(folder, "arms", arms_key, _arms(run, folder, shared, synthetic, arms_key),
                                lambda folder=folder: not missing_arms(folder, synthetic)))
            if position == 0 and free:  # the real splits of the first run's package: the same in every run
                free_key = params_hash(params, ("benchmark", "augment", "package"), shared_key,
                                       without=("benchmark.arms",))
                out.append(Step(shared, "arms", free_key,
                                _arms(run, shared, shared, free, free_key, package_from=folder),
                                lambda shared=shared: not missing_arms(shared, free)))
    return out


def _stage(params: Params, folder: Path, name: str, upstream: Path | None = None) -> Callable[[], object]:
    return lambda: run_pipeline(params, folder, stages=[name], upstream=upstream)


def arms_held(folder: Path) -> dict[str, int]:
    """The arms whose results ``folder``'s arms folder holds, with their training images."""
    try:
        return dict(json.loads((folder / ARMS_DIR / ARMS_INFO).read_text(encoding="utf-8"))["n_train"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def missing_arms(folder: Path, arms: list[str]) -> list[str]:
    held = arms_held(folder)
    return [arm for arm in arms if arm not in held]


def _arms(run: Run, folder: Path, shared: Path, arms: list[str], key: str,
          package_from: Path | None = None) -> Callable[[], None]:
    def train() -> None:
        from histosynth.benchmark.arms import load_benchmark_data
        from histosynth.benchmark.training import run_all

        # recorded with these params: only the arms added since; otherwise every arm, the old ones replaced
        held = arms_held(folder) if read_record(folder).get("arms") == key else {}
        kept = [arm for arm in arms if arm in held]
        params = run.params.benchmark.model_copy(update={"arms": [arm for arm in arms if arm not in kept]})
        package = (package_from or folder) / paths.PACKAGE_DIR
        data = load_benchmark_data(package, shared / paths.AUGMENTED_DIR, run.params.augment)
        schedules, n_train = data.arms(params), data.n_train()
        results = run_all(schedules, n_train, params, data.val, data.test.images)
        with atomic_output_dir(folder / ARMS_DIR, "study arms folder") as tmp:
            for arm in kept:
                shutil.copyfile(folder / ARMS_DIR / f"{arm}.npy", tmp / f"{arm}.npy")
            for arm, arm_runs in results.items():
                np.save(tmp / f"{arm}.npy", arm_runs.probabilities.astype(np.float32))
            info = {"class_names": list(data.class_names), "labels": data.test.labels.tolist(),
                    "seeds": list(params.seeds),
                    "n_train": {**{arm: held[arm] for arm in kept}, **{arm: n_train[arm] for arm in results}}}
            (tmp / ARMS_INFO).write_text(json.dumps(info) + "\n", encoding="utf-8")

    return train


def run_steps(all_steps: list[Step]) -> dict[str, int]:
    """Run the steps not done yet, in order, with a progress bar and ETA; return how many ran and were skipped."""
    todo = [step for step in all_steps if not is_done(step)]
    skipped = len(all_steps) - len(todo)
    if skipped:
        log.info("study: %d of %d steps done before (recorded with the same params): not repeated",
                 skipped, len(all_steps))
    seconds: dict[str, list[float]] = {}
    with progress.bar(total=len(todo), desc="study", unit="step") as bar:
        for number, step in enumerate(todo, 1):
            bar.set_postfix_str(step.title)
            step_started = time.perf_counter()
            step.run()
            mark_done(step)
            bar.update()
            took = time.perf_counter() - step_started
            seconds.setdefault(step.name, []).append(took)
            log.info("study step %d/%d done: %s (%.1f s; ETA %.0f s)", number, len(todo), step.title, took,
                     remaining_seconds(seconds, [s.name for s in todo[number:]]))
    return {"ran": len(todo), "skipped": skipped}


def remaining_seconds(seconds: dict[str, list[float]], names: list[str]) -> float:
    """The time the steps ``names`` should take: each the mean time of the steps of its name done so far
    (an arms step takes a hundred times a package step), or of all steps done when none of its name is."""
    everything = [s for taken in seconds.values() for s in taken]
    overall = sum(everything) / len(everything) if everything else 0.0
    return sum(sum(seconds[n]) / len(seconds[n]) if seconds.get(n) else overall for n in names)
