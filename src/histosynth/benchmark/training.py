"""Training every (arm, seed) with the same recipe and step count and collecting its real-test probabilities.

Each training runs on one torch thread (see :func:`histosynth.classifier.train.train_classifier`)
and is a function of its data, recipe and seed alone, so several of them can run at once in
worker processes and the results are the same bits whatever the number of workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np

from histosynth import progress
from histosynth.classifier.embed import predict_proba
from histosynth.classifier.train import EvalRecord, Schedule, train_classifier
from histosynth.config.benchmark import BenchmarkParams
from histosynth.config.classifier import Arch, ClassifierRecipe
from histosynth.dataset import ImageSet
from histosynth.parallel import usable_cores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One training: which schedule (an arm or a sweep point) and which seed."""

    name: str
    seed: int


@dataclass(frozen=True)
class RunResult:
    probabilities: np.ndarray  # (N_test, K) float32 softmax outputs on the real test split
    best_step: int
    history: tuple[EvalRecord, ...]


@dataclass(frozen=True)
class ArmRuns:
    """One training set's results, one per seed in the order of the seeds."""

    results: tuple[RunResult, ...]
    n_train: int

    @property
    def probabilities(self) -> np.ndarray:
        """(seeds, N_test, K) float32."""
        return np.stack([r.probabilities for r in self.results])


def train_and_predict(schedule: Schedule, val: ImageSet, test_images: np.ndarray, recipe: ClassifierRecipe,
                      arch: Arch) -> RunResult:
    """Train by ``schedule`` (model selection on ``val``) and return the test probabilities."""
    trained = train_classifier(schedule, val, recipe, arch)
    return RunResult(predict_proba(trained.model, test_images), trained.best_step, trained.history)


def run_all(training_sets: dict[str, Schedule], n_train: dict[str, int], params: BenchmarkParams, val: ImageSet,
            test_images: np.ndarray) -> dict[str, ArmRuns]:
    """Every schedule with every seed of ``params``, ``params.threads`` trainings at once; a schedule
    object given under several names is trained once and its results reported under each.

    The results are in the order of the schedules and seeds, whatever order they finished in.
    """
    first_name: dict[int, str] = {}
    trained_as = {name: first_name.setdefault(id(schedule), name) for name, schedule in training_sets.items()}
    for name, first in trained_as.items():
        if name != first:
            log.info("%s trains exactly as %s here: trained once, reported under both", name, first)
    runs = [Run(name, seed) for name in training_sets if trained_as[name] == name for seed in params.seeds]
    workers = min(params.threads or usable_cores(), len(runs))
    arch = params.classifier
    log.info("%d trainings (%d training sets x %d seeds) of %s, %d steps each, %d at once", len(runs),
             len(first_name), len(params.seeds), arch, params.steps, workers)
    bar = progress.bar(total=len(runs), desc="benchmark", unit="training")
    results: dict[Run, RunResult] = {}

    def done(run: Run, result: RunResult) -> None:
        results[run] = result
        log.info("%s, seed %d: best step %d of %d", run.name, run.seed, result.best_step, params.steps)
        bar.update()

    with bar:
        if workers <= 1:
            for run in runs:
                done(run, train_and_predict(training_sets[run.name], val, test_images, params.recipe(run.seed), arch))
        else:
            # spawn: a fresh interpreter per worker, safe whatever threads torch has started here.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
                # The largest training sets first: their arrays take longest to hand over.
                by_size = sorted(runs, key=lambda run: -n_train[run.name])
                futures: dict[Future[RunResult], Run] = {
                    pool.submit(train_and_predict, training_sets[run.name], val, test_images,
                                params.recipe(run.seed), arch): run
                    for run in by_size}
                for future in as_completed(futures):
                    done(futures[future], future.result())
    return {name: ArmRuns(tuple(results[Run(trained_as[name], seed)] for seed in params.seeds), n_train[name])
            for name in training_sets}


def _quiet_worker() -> None:
    """Workers' own progress bars would garble the parent's; their errors come back through the futures."""
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker process
