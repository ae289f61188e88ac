"""Generation in several processes (``torchrun``): who makes which images, and meeting points.

``torchrun --nproc_per_node=K stages/generate.py`` (``--nnodes`` across hosts, with the output
folder on a filesystem every host sees) starts K processes with RANK/WORLD_SIZE set. The
``(class, block)`` pairs of the run (:func:`histosynth.generate.sampler.class_blocks`) are cut
into K contiguous, disjoint runs, one per process, so each process takes one index range of
each class (possibly empty) and every image is computed by exactly one process, in the same
fixed block it has in a one-process run: the bytes cannot differ. The processes meet through a
gloo process group (a barrier and one gather of the written files' MD5s), on CPUs and GPUs alike.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# How long a process waits for the others at a meeting point. torchrun stops the whole group
# as soon as one process dies, so this only matters if a host hangs.
MEETING_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def take(self, items: Sequence[Any]) -> list[Any]:
        """This process's contiguous share of ``items``: sizes differ by at most one, earlier ranks first."""
        per, extra = divmod(len(items), self.world_size)
        start = self.rank * per + min(self.rank, extra)
        return list(items[start:start + per + (self.rank < extra)])

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, value: Any) -> list[Any] | None:
        """Every process's ``value`` in rank order on the main process; None on the others."""
        if not self.distributed:
            return [value]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@contextlib.contextmanager
def process_shard() -> Iterator[Shard]:
    """This process's :class:`Shard` (one of one without torchrun); joins and leaves the group."""
    world_size = _env_int("WORLD_SIZE", 1)
    shard = Shard(_env_int("RANK", 0), world_size, _env_int("LOCAL_RANK", 0),
                  _env_int("LOCAL_WORLD_SIZE", world_size))
    started = shard.distributed and not dist.is_initialized()
    if started:
        dist.init_process_group("gloo", timeout=MEETING_TIMEOUT)
    if shard.distributed and torch.cuda.is_available():
        torch.cuda.set_device(shard.local_rank % torch.cuda.device_count())
    try:
        yield shard
    finally:
        if started:
            dist.destroy_process_group()
