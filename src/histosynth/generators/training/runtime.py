"""Where training runs: device, precision, threads, determinism and DDP process group.

One code path serves a single CPU, a single GPU and ``torchrun --nproc_per_node=K``:
torchrun sets WORLD_SIZE/RANK/LOCAL_RANK, and every process runs the same training code on
its own shard of each epoch; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from histosynth.errors import ConfigError
from histosynth.parallel import usable_cores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` on the device; inside DistributedDataParallel when distributed.

        Plain DDP (no ``static_graph``) handles the WGAN-GP double backward: the penalty's
        ``autograd.grad(..., create_graph=True)`` w.r.t. the inputs fires no parameter hooks,
        and the one ``backward()`` of the total loss all-reduces each gradient once.
        ``static_graph=True`` silently desynchronises the ranks here (tested).
        """
        module = module.to(self.device)
        if not self.distributed:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def all_mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of ``value`` over all processes (itself when not distributed)."""
        if not self.distributed:
            return value
        total = value.clone()
        dist.all_reduce(total)
        return total / self.world_size


def _cuda_error(requested: str) -> ConfigError:
    return ConfigError(f"gan.device = {requested!r} but PyTorch sees no CUDA GPU (torch {torch.__version__}, "
                       f"built for CUDA {torch.version.cuda}); set gan.device to auto or cpu")


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise _cuda_error(requested)
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def resolve_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "auto":
        return torch.bfloat16 if cuda_bf16 else None
    if device.type == "cuda" and not cuda_bf16:
        raise ConfigError(f"gan.precision = 'bf16' but {torch.cuda.get_device_name(device)} has no bf16 support; "
                          "set gan.precision to auto or fp32")
    return torch.bfloat16


def _cpu_threads(requested: int, local_world_size: int) -> int:
    """``requested`` if > 0, else OMP_NUM_THREADS when set, else this machine's cores shared among its processes."""
    if requested > 0:
        return requested
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return max(1, usable_cores() // local_world_size)


@contextlib.contextmanager
def training_runtime(device: str, precision: str, threads: int = 0) -> Iterator[Runtime]:
    """Set up (and afterwards undo) the process-wide state training needs.

    On CPU, deterministic algorithms are enforced so that the same params give the same
    weights; on CUDA, cuDNN autotuning is preferred over bit-exactness.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    runtime = Runtime(dev, resolve_autocast_dtype(precision, dev), rank, world_size)

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    torch.set_num_threads(_cpu_threads(threads, int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True)
    started_group = runtime.distributed and not dist.is_initialized()
    if started_group:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    log.info("training on %s (%s), process %d of %d, %d CPU threads", dev, runtime.precision, rank + 1, world_size,
             torch.get_num_threads())
    try:
        yield runtime
    finally:
        if started_group:
            dist.destroy_process_group()
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        torch.backends.cudnn.benchmark = saved[2]
