"""How many cores this process may use, and an ordered, bounded thread map for per-file work
(encoding, hashing, linking, copying, decoding).

File IO, hashlib and zlib release the GIL, so threads keep every core busy. Items travel in
chunks (one task per chunk keeps the pool's bookkeeping small next to the work on small files),
and at most ``4 * workers`` chunks are in flight, so memory does not grow with the number of files.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

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
