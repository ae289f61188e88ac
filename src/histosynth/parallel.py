"""How many cores this process may use, an ordered, bounded thread map for per-file work
(encoding, hashing, linking, copying, decoding), and a process map for a few long jobs that hold the
GIL (trainings on one torch thread each).

File IO, hashlib and zlib release the GIL, so threads keep every core busy. Items travel in
chunks (one task per chunk keeps the pool's bookkeeping small next to the work on small files),
and at most ``4 * workers`` chunks are in flight, so memory does not grow with the number of files.

A pool stops when its map ends, fails or is closed, and :func:`stop_pools` stops the pools a
thread opened at once: the queued work is cancelled and the running tasks are waited for, so
that nothing writes into a temporary folder any more when it is removed.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

CHUNK = 64

_OPEN_LOCK = threading.Lock()
_OPEN: dict[int, set[ThreadPoolExecutor]] = {}  # the running pools, by the thread that opened them


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
    pool = ThreadPoolExecutor(workers, thread_name_prefix="histosynth-io")
    owner = threading.get_ident()
    with _OPEN_LOCK:
        _OPEN.setdefault(owner, set()).add(pool)
    try:
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
    finally:
        _stop(pool, owner)


def _stop(pool: ThreadPoolExecutor, owner: int) -> None:
    pool.shutdown(wait=True, cancel_futures=True)
    with _OPEN_LOCK:
        pools = _OPEN.get(owner, set())
        pools.discard(pool)
        if not pools:
            _OPEN.pop(owner, None)


def stop_pools() -> None:
    """Stop every pool that :func:`ordered_map` opened in this thread and that still runs (a map
    its caller left mid-way, e.g. on an error or Ctrl-C): cancel the queued chunks, wait for the
    running ones."""
    owner = threading.get_ident()
    with _OPEN_LOCK:
        pools = list(_OPEN.get(owner, ()))
    for pool in pools:
        _stop(pool, owner)


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
