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

from histosynth.parallel import ordered_map
from histosynth.qa.pixel_space import PixelVectors, pixel_distances

# Rows of the query set per chunk: a chunk's distance matrix holds CHUNK * len(reference) floats.
CHUNK = 1024
# Extra candidates taken from the approximate distances before the exact re-ranking.
SPARE_CANDIDATES = 4
# Bytes of float32 vectors a streamed search holds at once: a block of reference vectors, and
# a chunk of queries' candidate vectors for the exact re-ranking.
BLOCK_BYTES = 32 << 20
# Bytes of float32 query vectors a streamed search holds at once (fewer passes over the reference).
QUERY_BYTES = 128 << 20
# Relative margin by which a lower bound must pass the k-th exact distance before its candidate is
# skipped (both are float32 sums; their rounding is about 1e-6 of the distance).
BOUND_SLACK = 1e-3

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


def _chunk(vectors: Vectors, start: int, stop: int) -> Vectors:
    """Rows start..stop as vectors of the same kind (pixel vectors stay lazy)."""
    if isinstance(vectors, PixelVectors):
        return vectors.take(slice(start, stop))
    return vectors[start:stop]


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
        distances[start : start + len(q)], indices[start : start + len(q)] = rerank(
            _chunk(query, start, start + len(q)), reference, best_i, k)
    return distances, indices


def rerank(query: Vectors, reference: Vectors, candidates: torch.Tensor, k: int,
           lower: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances (N, k) and indices (N, k) of each of the N ``query`` rows' k nearest among its
    candidate reference rows (N, C), from differences (of pixels as integers when both sets are
    pixel vectors); equal distances keep the candidates' order. Holds a few queries' candidate
    vectors at a time (:data:`BLOCK_BYTES`).

    ``lower`` (N, C), when given, bounds each candidate's distance from below: the k candidates with
    the smallest bounds are computed first, then only those whose bound does not pass the k-th
    distance found (:data:`BOUND_SLACK`); the others cannot be among the k nearest. Same result,
    fewer distances in full dimension.
    """
    n_queries, n_candidates = candidates.shape
    exact = np.full((n_queries, n_candidates), np.inf, np.float32)
    if lower is None:
        _fill_exact(exact, query, reference, candidates, np.ones(exact.shape, bool))
    else:
        first = np.zeros(exact.shape, bool)
        np.put_along_axis(first, np.argsort(lower, axis=1, kind="stable")[:, :k], True, axis=1)
        _fill_exact(exact, query, reference, candidates, first)
        kth = np.sort(exact, axis=1)[:, k - 1 : k]  # at least the final k-th distance
        _fill_exact(exact, query, reference, candidates, ~first & (lower * (1 - BOUND_SLACK) <= kth))
    found = torch.from_numpy(exact)
    order = found.argsort(dim=1, stable=True)[:, :k]
    return found.gather(1, order).numpy(), candidates.gather(1, order).numpy()


def _fill_exact(exact: np.ndarray, query: Vectors, reference: Vectors, candidates: torch.Tensor,
                wanted: np.ndarray) -> None:
    """exact[i, j] = |query[i] - reference[candidates[i, j]]| where ``wanted``, a block of pairs at a time."""
    query_rows, columns = np.nonzero(wanted)
    reference_rows = candidates.numpy()[query_rows, columns]
    pixels = isinstance(query, PixelVectors) and isinstance(reference, PixelVectors)
    step = max(1, BLOCK_BYTES // ((2 if pixels else 4) * max(_dim(reference), 1)))
    # the queries once (a flipped or turned image is copied into place), their candidates a block at a time
    queries = query.pixels(slice(None)) if pixels else _rows(query, 0, len(query))

    def block(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, cols = query_rows[start : start + step], columns[start : start + step]
        unique, where = np.unique(reference_rows[start : start + step], return_inverse=True)
        where = where.reshape(-1)
        if pixels:
            return rows, cols, pixel_distances(queries[rows], reference.pixels(unique)[where])
        vectors = _gather(reference, unique)[torch.from_numpy(where)]
        return rows, cols, torch.sub(queries[torch.from_numpy(rows)], vectors, out=vectors).norm(dim=1).numpy()

    # numpy's integer sums run on one core (torch's float ones on all): pixel blocks on threads
    workers = None if pixels else 1  # None: every usable core
    for rows, cols, distances in ordered_map(block, range(0, len(query_rows), step), workers, chunk=1):
        exact[rows, cols] = distances


def _gather(vectors: Vectors, rows: np.ndarray) -> torch.Tensor:
    if isinstance(vectors, PixelVectors):
        return as_tensor(vectors.rows(rows))
    return vectors[torch.from_numpy(rows)] if isinstance(vectors, torch.Tensor) else as_tensor(vectors[rows])
