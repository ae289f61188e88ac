"""Nearest neighbours of large sets: candidates from an approximate index, distances exact.

Exact search (histosynth.qa.knn) costs queries x references x dimension: at 30k images of
224 px with every flip and turn of the queries that is days on two cores. Above
:data:`EXACT_MAX_WORK` a search instead

1. reduces every vector to at most :data:`REDUCED_DIM` numbers: pixel vectors are averaged down
   to :data:`REDUCED_SIDE` px a side (a low-pass image: the windows are symmetric, so a flipped
   image's reduction is the flipped reduction), other vectors longer than that are projected on
   seeded random directions;
2. finds each query's ``k`` + :data:`SPARE_CANDIDATES` nearest reduced references in a faiss
   IVF-Flat index (:data:`LISTS_PER_ROOT` x sqrt(references) lists from a seeded k-means,
   :data:`PROBED_SHARE` of them probed; a query whose probed lists hold too few references is
   searched over every list);
3. re-ranks those candidates by their exact distances in full dimension (knn.rerank, the code
   the exact search uses), so a found neighbour's distance is the exact one and a verbatim copy
   is at distance 0. Where the reduction is an average over whole blocks of pixels (the side a
   multiple of :data:`REDUCED_SIDE`) or no reduction, a reduced distance is never larger than the
   full one, and candidates whose reduced distance passes the k-th exact one are skipped: at 224 px
   that is most of them (bench/results/near_copy_search.md).

What can differ from the exact search is only which references were candidates: a neighbour
that is far down the reduced ranking is missed (bench/speed/near_copy_search.py measures how
often). The index holds 4 x :data:`REDUCED_DIM` + 8 bytes per reference image (3 KiB; 92 MiB at
30k), twice that while it is built; queries are searched a chunk at a time. Results do not
depend on the number of threads (tests/test_qa_ann.py); faiss picks its own SIMD code, so, like
torch's, they are the same on machines of the same CPU capability.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from histosynth.qa import knn
from histosynth.qa.knn import Vectors
from histosynth.qa.pixel_space import PixelVectors

# Query rows x reference rows x dimension above which the approximate search is used: below it
# the exact search is about as fast (bench/results/near_copy_search.md, the crossover).
EXACT_MAX_WORK = 5e10
REDUCED_SIDE = 16
REDUCED_DIM = REDUCED_SIDE * REDUCED_SIDE * 3
# Candidates beyond k re-ranked exactly per query.
SPARE_CANDIDATES = 8
# The index's lists: this many times the square root of the number of references; the share of
# them probed per query (bench/results/near_copy_search.md: recall and seconds of a few settings).
LISTS_PER_ROOT = 4
PROBED_SHARE = 0.125
SEED = 0


class NeighbourSearch(Protocol):
    def nearest(self, query: Vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances (N, k) and indices (N, k) of each query row's k nearest reference rows, nearest first."""


class ExactSearch:
    """knn.nearest over one reference set."""

    def __init__(self, reference: Vectors) -> None:
        self.reference = reference

    def nearest(self, query: Vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        return knn.nearest(query, self.reference, k)


def searcher(reference: Vectors, n_queries: int, approximate: bool | None = None) -> NeighbourSearch:
    """The search for ``n_queries`` query rows against ``reference``: approximate when the exact
    search's work would pass :data:`EXACT_MAX_WORK` (``approximate`` True or False: that one)."""
    if approximate is None:
        approximate = float(n_queries) * len(reference) * knn._dim(reference) > EXACT_MAX_WORK
    return ApproximateSearch(reference) if approximate else ExactSearch(reference)


def reduce(rows: torch.Tensor, reference: Vectors) -> np.ndarray:
    """Rows (n, D) of vectors shaped like ``reference``'s, reduced to at most :data:`REDUCED_DIM` (float32)."""
    if isinstance(reference, PixelVectors):
        side, width, channels = reference.images.shape[1:]
        if side == width and side > REDUCED_SIDE:
            images = rows.reshape(len(rows), side, side, channels).permute(0, 3, 1, 2)
            pooled = F.adaptive_avg_pool2d(images, REDUCED_SIDE).permute(0, 2, 3, 1).reshape(len(rows), -1)
            # scaled so that reduced distances are RMS differences like the full ones
            return np.ascontiguousarray((pooled * math.sqrt(rows.shape[1] / pooled.shape[1])).numpy())
    if rows.shape[1] <= REDUCED_DIM:
        return np.ascontiguousarray(rows.numpy(), dtype=np.float32)
    directions = torch.from_numpy(_directions(rows.shape[1]))
    return np.ascontiguousarray((rows @ directions).numpy())


def reduction_bounds(reference: Vectors) -> bool:
    """Whether :func:`reduce` keeps every distance or shrinks it (so reduced distances bound full ones
    from below): an average over a partition of the pixels into equal blocks, or no reduction."""
    if isinstance(reference, PixelVectors):
        side, width = reference.images.shape[1:3]
        if side == width and side > REDUCED_SIDE:
            return side % REDUCED_SIDE == 0
    return knn._dim(reference) <= REDUCED_DIM


def _directions(dim: int) -> np.ndarray:
    """(dim, REDUCED_DIM) seeded Gaussian directions, scaled to keep distances on average."""
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((dim, REDUCED_DIM)) / math.sqrt(REDUCED_DIM)).astype(np.float32)


class ApproximateSearch:
    """An IVF-Flat index over the reduced ``reference``, exact re-ranking (see the module docstring)."""

    def __init__(self, reference: Vectors) -> None:
        if len(reference) < 1:
            raise ValueError("need at least one reference vector")
        self.reference = reference
        dim = max(knn._dim(reference), 1)
        block = max(1, knn.BLOCK_BYTES // (4 * dim))
        reduced = np.concatenate([reduce(knn._rows(reference, start, start + block), reference)
                                  for start in range(0, len(reference), block)])
        self.n_lists = max(1, min(len(reference), round(LISTS_PER_ROOT * math.sqrt(len(reference)))))
        faiss = _faiss()
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(reduced.shape[1]), reduced.shape[1], self.n_lists)
        self.index.cp.seed = SEED
        self.index.cp.min_points_per_centroid = 1  # small sets: no warning, the lists are just small
        self.index.train(reduced)
        self.index.add(reduced)
        self.index.nprobe = max(1, math.ceil(PROBED_SHARE * self.n_lists))
        self.bounds = reduction_bounds(reference)
        if self.bounds:
            self.index.make_direct_map()  # reduced references by row, for the bounds (8 bytes a row)

    @property
    def index_bytes(self) -> int:
        return len(self.reference) * (4 * self.index.d + 8)

    def candidates(self, reduced: np.ndarray, n: int) -> np.ndarray:
        """(len(reduced), n) reference rows nearest in reduced space, by distance then row."""
        distances, rows = self.index.search(reduced, n)
        short = np.flatnonzero((rows < 0).any(axis=1))
        if len(short):  # the probed lists held fewer than n references: search every list
            params = _faiss().SearchParametersIVF(nprobe=self.n_lists)
            distances[short], rows[short] = self.index.search(reduced[short], n, params=params)
        order = np.lexsort((rows, distances), axis=1)  # equal distances (copies among the references) by row
        return np.take_along_axis(rows, order, 1)

    def nearest(self, query: Vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not 1 <= k <= len(self.reference):
            raise ValueError(f"need at least {k} reference vectors, got {len(self.reference)}")
        n = min(len(self.reference), k + SPARE_CANDIDATES)
        dim = max(knn._dim(query), 1)
        chunk = max(1, min(knn.CHUNK, knn.QUERY_BYTES // (4 * dim)))
        distances = np.empty((len(query), k), np.float32)
        indices = np.empty((len(query), k), np.int64)
        for start in range(0, len(query), chunk):
            q = knn._rows(query, start, start + chunk)
            reduced = reduce(q, self.reference)
            rows = self.candidates(reduced, n)
            lower = self.reduced_distances(reduced, rows) if self.bounds else None
            distances[start : start + len(q)], indices[start : start + len(q)] = knn.rerank(
                knn._chunk(query, start, start + len(q)), self.reference, torch.from_numpy(rows), k, lower)
        return distances, indices

    def reduced_distances(self, reduced: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(N, C) distances from reduced queries to their candidates' reduced vectors, from differences."""
        candidates = self.index.reconstruct_batch(rows.reshape(-1)).reshape(*rows.shape, -1)
        return np.linalg.norm(reduced[:, None, :] - candidates, axis=2)


def _faiss():
    """faiss, imported when an index is first built: small searches (the demo's) never load it. Its
    loader logs at INFO every SIMD build it tries and cannot find, tracebacks' last lines included;
    only a failure to load at all is worth a line in a stage's log."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    return faiss
