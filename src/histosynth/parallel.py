"""How many cores this process may use, an ordered, bounded thread map for per-file work
(encoding, hashing, linking, copying, decoding), and a process map for a few long jobs that hold the
GIL (trainings on one torch thread each).

File IO, hashlib and zlib release the GIL, so threads keep every core busy. Items travel in
chunks (one task per chunk keeps the pool's bookkeeping small next to the work on small files),
and at most ``4 * workers`` chunks are in flight, so memory does not grow with the number of files.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

CHUNK = 64


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _apply(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [fn(item) for item in chunk]


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                chunk: int = CHUNK) -> Iterator[R]:
    """``fn(item)`` for every item, computed on ``workers`` threads (default: all usable cores),
    yielded in input order. An exception in ``fn`` is raised here, at that item's turn."""
    workers = max(1, workers or usable_cores())
    source = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix="histosynth-io") as pool:
        pending: deque[Future[list[R]]] = deque()

        def submit() -> bool:
            part = list(islice(source, chunk))
            if part:
                pending.append(pool.submit(_apply, fn, part))
            return bool(part)

        while len(pending) < 4 * workers and submit():
            pass
        while pending:
            results = pending.popleft().result()
            submit()
            yield from results


def process_map(fn: Callable[..., R], jobs: Sequence[tuple[Any, ...]], workers: int = 1) -> list[R]:
    """``fn(*job)`` for every job, ``workers`` at a time in spawned worker processes (here, one after the
    other, when ``workers`` is 1 or there is one job); the results in job order.

    For a few long jobs that hold the GIL, each a function of its arguments alone (so the results do
    not depend on ``workers``). Jobs are handed out in the order given: put the longest first. ``fn``
    and the arguments must pickle; a worker's exception is raised here. Workers' stderr is silenced
    (their progress bars would garble this process's). A script calling this with ``workers`` > 1
    must do so under ``if __name__ == "__main__":``.
    """
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        return [fn(*job) for job in jobs]
    # spawn: a fresh interpreter per worker, safe whatever threads torch has started here
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        return [future.result() for future in futures]


def _quiet_worker() -> None:
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker process
