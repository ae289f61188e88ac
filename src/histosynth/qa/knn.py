"""Nearest-neighbour distances between large sets of vectors, in chunks of bounded memory.

Distances are Euclidean. Candidates are found with torch.cdist's matrix-product form (fast,
but float32 cancellation blurs distances near 0), then the distances to the chosen
candidates are recomputed from differences, so an exact copy is at distance exactly 0.

Pixel vectors (histosynth.qa.pixel_space.PixelVectors) are searched block by block of the
reference set, each block made from its images when it is needed: memory holds a block and
the candidates, whatever the number of images. The distances and neighbours found are the
exact ones in both forms (the approximate distances only choose which to recompute).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Union

import numpy as np
import torch

from histosynth.qa.pixel_space import PixelVectors

# Rows of the query set per chunk: a chunk's distance matrix holds CHUNK * len(reference) floats.
CHUNK = 1024
# Extra candidates taken from the approximate distances before the exact re-ranking.
SPARE_CANDIDATES = 4
# Bytes of float32 vectors a streamed search holds at once: a block of reference vectors, and
# a chunk of queries' candidate vectors for the exact re-ranking.
BLOCK_BYTES = 32 << 20
# Bytes of float32 query vectors a streamed search holds at once (fewer passes over the reference).
QUERY_BYTES = 128 << 20

Vectors = Union[np.ndarray, torch.Tensor, PixelVectors]


def as_tensor(vectors: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(vectors), -1))


def distance_chunks(query: torch.Tensor, reference: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, distances of query[start:start+CHUNK] to every reference row), approximate."""
    centre = reference.mean(0, keepdim=True) if len(reference) else 0.0  # shrinks norms, so cancellation
    q, r = query - centre, reference - centre
    for start in range(0, len(q), CHUNK):
        yield start, torch.cdist(q[start : start + CHUNK], r)


def nearest(query: Vectors, reference: Vectors, k: int = 1,
            exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distances (N, k) and indices (N, k) of each query row's k nearest reference rows, nearest first.

    ``exclude_self``: query and reference are the same set; a row is not its own neighbour.
    Pixel vectors are searched block by block (:func:`nearest_streamed`).
    """
    if isinstance(query, PixelVectors) or isinstance(reference, PixelVectors):
        if exclude_self:
            raise ValueError("exclude_self is for vectors held in memory")
        return nearest_streamed(query, reference, k)
    q = query if isinstance(query, torch.Tensor) else as_tensor(query)
    r = reference if isinstance(reference, torch.Tensor) else as_tensor(reference)
    n_candidates = min(k + SPARE_CANDIDATES, len(r) - int(exclude_self))
    if n_candidates < k:
        raise ValueError(f"need more than {k} reference vectors, got {len(r)}")
    distances = np.empty((len(q), k), np.float32)
    indices = np.empty((len(q), k), np.int64)
    for start, d in distance_chunks(q, r):
        if exclude_self:
            rows = torch.arange(len(d))
            d[rows, rows + start] = float("inf")
        candidates = d.topk(n_candidates, dim=1, largest=False).indices
        exact = (q[start : start + len(d), None, :] - r[candidates]).norm(dim=2)
        order = exact.argsort(dim=1, stable=True)[:, :k]
        distances[start : start + len(d)] = exact.gather(1, order).numpy()
        indices[start : start + len(d)] = candidates.gather(1, order).numpy()
    return distances, indices


def kth_neighbour_distance(vectors: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (the radius of its k-NN ball)."""
    return nearest(vectors, vectors, k, exclude_self=True)[0][:, k - 1]


def _rows(vectors: Vectors, start: int, stop: int) -> torch.Tensor:
    if isinstance(vectors, PixelVectors):
        return as_tensor(vectors.rows(slice(start, stop)))
    return vectors[start:stop] if isinstance(vectors, torch.Tensor) else as_tensor(vectors[start:stop])


def _dim(vectors: Vectors) -> int:
    return vectors.dim if isinstance(vectors, PixelVectors) else int(np.prod(vectors.shape[1:]))


def _mean(vectors: Vectors, rows_per_block: int) -> torch.Tensor:
    """The mean row (1, D), summed in float64 block by block."""
    if isinstance(vectors, PixelVectors):
        mean = vectors.mean(rows_per_block)
    else:
        mean = np.asarray(vectors, np.float64).reshape(len(vectors), -1).mean(axis=0)
    return torch.from_numpy(mean.astype(np.float32))[None]


def nearest_streamed(query: Vectors, reference: Vectors, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest` holding a block of ``reference`` at a time (see the module docstring).

    Per chunk of queries the ``k`` + :data:`SPARE_CANDIDATES` nearest by approximate distance are
    kept over the blocks, then their exact distances recomputed and ranked (ties in the order of
    the approximate distances), as :func:`nearest` does over the whole reference at once."""
    dim = max(_dim(reference), 1)
    n_candidates = min(k + SPARE_CANDIDATES, len(reference))
    if n_candidates < k or k < 1:
        raise ValueError(f"need at least {k} reference vectors, got {len(reference)}")
    block = max(1, BLOCK_BYTES // (4 * dim))
    chunk = max(1, min(CHUNK, QUERY_BYTES // (4 * dim)))  # each chunk reads the whole reference once
    centre = _mean(reference, block)  # shrinks norms, so cancellation
    distances = np.empty((len(query), k), np.float32)
    indices = np.empty((len(query), k), np.int64)
    for start in range(0, len(query), chunk):
        q = _rows(query, start, start + chunk)
        centred = q - centre
        best_d, best_i = torch.empty((len(q), 0)), torch.empty((len(q), 0), dtype=torch.int64)
        for r_start in range(0, len(reference), block):
            d = torch.cdist(centred, _rows(reference, r_start, r_start + block) - centre)
            both_d = torch.cat([best_d, d], dim=1)
            both_i = torch.cat([best_i, torch.arange(r_start, r_start + d.shape[1]).expand(len(q), -1)], dim=1)
            top = both_d.topk(min(n_candidates, both_d.shape[1]), dim=1, largest=False)
            best_d, best_i = top.values, both_i.gather(1, top.indices)
        # candidates in order of approximate distance, equal ones (copies among the reference) by row
        by_row = best_i.sort(dim=1, stable=True).indices
        best_d, best_i = best_d.gather(1, by_row), best_i.gather(1, by_row)
        by_distance = best_d.sort(dim=1, stable=True).indices
        best_i = best_i.gather(1, by_distance)
        distances[start : start + len(q)], indices[start : start + len(q)] = rerank(q, reference, best_i, k)
    return distances, indices


def rerank(query: torch.Tensor, reference: Vectors, candidates: torch.Tensor,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances (N, k) and indices (N, k) of each query row's k nearest among its candidate
    reference rows (N, C), from differences; equal distances keep the candidates' order. Holds a few
    queries' candidate vectors at a time (:data:`BLOCK_BYTES`)."""
    dim = max(_dim(reference), 1)
    step = max(1, BLOCK_BYTES // (4 * dim * max(candidates.shape[1], 1)))
    distances = np.empty((len(query), k), np.float32)
    indices = np.empty((len(query), k), np.int64)
    for sub in range(0, len(query), step):  # the candidates' vectors, a few queries' worth at a time
        rows = candidates[sub : sub + step]
        wanted, where = np.unique(rows.numpy(), return_inverse=True)
        vectors = _gather(reference, wanted)[torch.from_numpy(where.reshape(rows.shape))]
        exact = torch.sub(query[sub : sub + step, None, :], vectors, out=vectors).norm(dim=2)  # in place: less memory
        order = exact.argsort(dim=1, stable=True)[:, :k]
        distances[sub : sub + len(rows)] = exact.gather(1, order).numpy()
        indices[sub : sub + len(rows)] = rows.gather(1, order).numpy()
    return distances, indices


def _gather(vectors: Vectors, rows: np.ndarray) -> torch.Tensor:
    if isinstance(vectors, PixelVectors):
        return as_tensor(vectors.rows(rows))
    return vectors[torch.from_numpy(rows)] if isinstance(vectors, torch.Tensor) else as_tensor(vectors[rows])
