"""How torch computes, for every stage: on one intra-op thread where the results or the speed need it.

The thread count can change float results in their last bits (kernels block work by thread), and
OpenMP teams spin badly on a busy machine; stages that need throughput run several single-threaded
jobs at once instead (histosynth.parallel).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch ops on one intra-op thread here and in threads started inside the block."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
