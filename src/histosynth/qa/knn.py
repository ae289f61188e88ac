"""Nearest-neighbour distances between large sets of vectors, in chunks of bounded memory.

Distances are Euclidean. Candidates are found with torch.cdist's matrix-product form (fast,
but float32 cancellation blurs distances near 0), then the distances to the chosen
candidates are recomputed from differences, so an exact copy is at distance exactly 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

# Rows of the query set per chunk: a chunk's distance matrix holds CHUNK * len(reference) floats.
CHUNK = 1024
# Extra candidates taken from the approximate distances before the exact re-ranking.
SPARE_CANDIDATES = 4


def as_tensor(vectors: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(vectors), -1))


def distance_chunks(query: torch.Tensor, reference: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, distances of query[start:start+CHUNK] to every reference row), approximate."""
    centre = reference.mean(0, keepdim=True) if len(reference) else 0.0  # shrinks norms, so cancellation
    q, r = query - centre, reference - centre
    for start in range(0, len(q), CHUNK):
        yield start, torch.cdist(q[start : start + CHUNK], r)


def nearest(query: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, k: int = 1,
            exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distances (N, k) and indices (N, k) of each query row's k nearest reference rows, nearest first.

    ``exclude_self``: query and reference are the same set; a row is not its own neighbour.
    """
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
