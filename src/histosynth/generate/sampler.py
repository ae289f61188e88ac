"""Running a generator: fixed blocks of latents in, uint8 RGB images out.

Why fixed blocks: on CPU the float result for one image changes in its last bits with the
batch it is computed in (oneDNN and MKL choose kernels and blockings by batch size), and after
rounding to uint8 a few images in every hundred differ by one grey level. The generator
therefore always sees the same block of latents for an image: block ``b`` of class ``c`` holds
images ``b * FORWARD_BLOCK .. (b + 1) * FORWARD_BLOCK - 1`` of that class, whatever the
number of images, the batch size or the caller (a class's last block is filled up with the
images that would follow and they are dropped). So an image is a function of
(generator, seed, class, index) alone, and :meth:`BlockSampler.image` reproduces it byte for
byte on the same kind of device, at the same precision, with the same library versions.

Every block is computed with one torch thread (the thread count can change float results,
and OpenMP teams spin badly on a busy machine); throughput comes from running several blocks
at once on worker threads instead, while the PNG writers use the cores as well.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from histosynth.errors import ConfigError
from histosynth.generate.latents import latents
from histosynth.parallel import usable_cores
from histosynth.torch_runtime import single_torch_thread

if TYPE_CHECKING:
    from histosynth.generate.colour import ColourMatch

FORWARD_BLOCK = 64


def class_blocks(n_classes: int, n_per_class: int) -> list[tuple[int, int]]:
    """Every ``(label, block)`` that ``n_per_class`` images per class need, class by class."""
    return [(label, b) for label in range(n_classes) for b in range(math.ceil(n_per_class / FORWARD_BLOCK))]


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a ConfigError."""
    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        raise ConfigError("generate.device is 'cuda' but torch finds no CUDA device; set it to 'auto' or 'cpu'")
    if choice == "auto":
        return torch.device("cuda" if cuda else "cpu")
    return torch.device(choice)


def resolve_precision(choice: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: ``auto`` -> bf16 on a CUDA GPU that supports it, fp32 otherwise."""
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if choice == "auto":
        return "bf16" if cuda_bf16 else "fp32"
    if choice == "bf16" and device.type == "cuda" and not cuda_bf16:
        raise ConfigError(f"generate.precision is 'bf16' but {torch.cuda.get_device_name(device)} has no bf16 "
                          "support; set it to 'auto' or 'fp32'")
    return choice


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """Generator output [B, 3, S, S] in [-1, 1] -> (B, S, S, 3) uint8 RGB (the GAN pixel convention)."""
    pixels = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class BlockSampler:
    """The images of one label-conditioned generator ``G(z, y)``, computed a block at a time."""

    def __init__(self, generator: nn.Module, latent_dim: int, seed: int, device: torch.device,
                 precision: str = "fp32", recolour: ColourMatch | None = None) -> None:
        # channels_last: oneDNN's faster convolution layout (on CPU dcgan 15-20%, cwgan128 2-3x).
        self.generator = generator.to(device, memory_format=torch.channels_last).eval()
        self.latent_dim = latent_dim
        self.seed = seed
        self.device = device
        self.precision = precision
        self.recolour = recolour  # generate.colour_match

    def _block(self, label: int, block: int) -> np.ndarray:
        """Images of block ``block`` of class ``label``: (FORWARD_BLOCK, S, S, 3) uint8.

        Call only under :func:`single_torch_thread`.
        """
        z = torch.from_numpy(latents(self.seed, label, block * FORWARD_BLOCK, FORWARD_BLOCK, self.latent_dim))
        y = torch.full((FORWARD_BLOCK,), label, dtype=torch.long)
        # inference_mode is thread-local: entered here because blocks run on a worker thread.
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            x = self.generator(z.to(self.device), y.to(self.device))
        if self.recolour is not None:
            x = self.recolour(x, self.seed, label, np.arange(block * FORWARD_BLOCK, (block + 1) * FORWARD_BLOCK))
        return to_uint8_images(x)

    def manifest_columns(self, labels: np.ndarray, indices: np.ndarray) -> dict[str, Any]:
        """Per-image manifest columns beyond the shared ones (edits: their source; recoloured samples: their
        colour reference); none for plain samples."""
        return {} if self.recolour is None else self.recolour.manifest_columns(self.seed, labels, indices)

    def image(self, label: int, index: int) -> np.ndarray:
        """Image ``index`` of class ``label``, (S, S, 3) uint8."""
        with single_torch_thread():
            return self._block(label, index // FORWARD_BLOCK)[index % FORWARD_BLOCK].copy()

    def stream(self, n_classes: int, n_per_class: int, lookahead: int,
               blocks: Sequence[tuple[int, int]] | None = None,
               processes_here: int = 1) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(label, index, image)`` for every class and index, class by class, in index order;
        only those of ``blocks`` (``(label, block)`` pairs, see :func:`class_blocks`) when given.

        Blocks are computed on worker threads (one per two cores on CPU, or one per core for a
        generator that declares itself ``compute_bound``, such as a diffusion sampler whose tens
        of network passes per image dwarf the PNG work; shared among the ``processes_here``
        processes of this host; one for a GPU), at most ``lookahead`` images (and at least one
        block per worker) ahead of the consumer, so the generator runs while the consumer
        encodes and memory stays bounded.
        """
        todo = iter(class_blocks(n_classes, n_per_class) if blocks is None else blocks)
        cores_per_worker = 1 if getattr(self.generator, "compute_bound", False) else 2
        workers = 1 if self.device.type == "cuda" else max(1, usable_cores() // (cores_per_worker * processes_here))
        depth = max(workers, math.ceil(lookahead / FORWARD_BLOCK))
        with single_torch_thread(), ThreadPoolExecutor(workers, thread_name_prefix="generator") as pool:
            pending: deque[tuple[int, int, Future[np.ndarray]]] = deque()

            def submit_next() -> None:
                key = next(todo, None)
                if key is not None:
                    pending.append((*key, pool.submit(self._block, *key)))

            for _ in range(depth):
                submit_next()
            while pending:
                label, b, future = pending.popleft()
                images = future.result()
                submit_next()
                first = b * FORWARD_BLOCK
                for offset in range(min(FORWARD_BLOCK, n_per_class - first)):
                    yield label, first + offset, images[offset]
