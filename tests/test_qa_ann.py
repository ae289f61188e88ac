"""The approximate near-copy search (histosynth.qa.ann) on the demo's real IHC tiles: candidates from
a faiss index over reduced vectors, exact distances. Forced on with ``approximate=True`` (the sets
here are far below the size where it is chosen by itself)."""

import faiss
import numpy as np
import pytest

from conftest import builtin_tiles
from histosynth.dihedral import dihedral_variant, dihedral_variants
from histosynth.qa import ann, knn
from histosynth.qa.metrics import memorisation
from histosynth.qa.pixel_space import PixelVectors, pixel_vectors, variants


@pytest.fixture(scope="module")
def tiles():
    return builtin_tiles()


def noisy(images: np.ndarray, sd: float, seed: int) -> np.ndarray:
    x = images.astype(np.float64) + np.random.default_rng(seed).normal(0, sd, images.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def test_planted_verbatim_and_near_copies_are_found_at_their_exact_distance(tiles):
    train = tiles["train"][0]
    picked = np.random.default_rng(0).choice(len(train), 60, replace=False)
    queries = np.concatenate([train[picked[:30]], noisy(train[picked[30:]], 6, 1), tiles["val"][0]])
    search = ann.ApproximateSearch(PixelVectors(train))
    distances, indices = search.nearest(PixelVectors(queries), k=2)
    assert (indices[:60, 0] == picked).all()
    assert (distances[:30, 0] == 0).all()
    exact = np.linalg.norm(pixel_vectors(queries)[:, None] - pixel_vectors(train)[indices], axis=2)
    np.testing.assert_allclose(distances, exact, rtol=1e-5, atol=1e-7)  # re-ranked in full dimension


def test_a_flipped_copy_is_found_in_the_flipped_query(tiles):
    train = tiles["train"][0]
    picked = np.random.default_rng(2).choice(len(train), 20, replace=False)
    turned = dihedral_variant(train[picked], 5)
    search = ann.ApproximateSearch(PixelVectors(train))
    undo = [v for v in range(8) if np.array_equal(dihedral_variant(turned, v), train[picked])][0]
    distances, indices = search.nearest(PixelVectors(turned, undo), k=1)
    assert (indices[:, 0] == picked).all() and (distances[:, 0] == 0).all()


def test_the_same_inputs_give_the_same_bytes_on_any_number_of_threads(tiles):
    train, queries = tiles["train"][0], np.concatenate([tiles["val"][0], tiles["test"][0]])
    threads = faiss.omp_get_max_threads()
    runs = []
    try:
        for n in (1, 2, 2):
            faiss.omp_set_num_threads(n)
            runs.append(ann.ApproximateSearch(PixelVectors(train)).nearest(PixelVectors(queries, 3), k=3))
    finally:
        faiss.omp_set_num_threads(threads)
    for distances, indices in runs[1:]:
        assert distances.tobytes() == runs[0][0].tobytes() and indices.tobytes() == runs[0][1].tobytes()


def test_it_agrees_with_the_exact_search_and_never_finds_a_closer_neighbour(tiles):
    train, queries = tiles["train"][0], np.concatenate([tiles["val"][0], tiles["test"][0]])
    exact_d, exact_i = knn.nearest(PixelVectors(queries), PixelVectors(train), k=2)
    approx_d, approx_i = ann.searcher(PixelVectors(train), len(queries), approximate=True).nearest(PixelVectors(queries), 2)
    same = approx_i == exact_i
    assert same[:, 0].mean() >= 0.97
    assert (approx_d[same] == exact_d[same]).all()  # the same exact distance code
    assert (approx_d >= exact_d).all()


def test_random_vectors_longer_than_the_reduced_dimension_are_projected():
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((400, ann.REDUCED_DIM + 100)).astype(np.float32)
    queries = np.concatenate([reference[:50] + 0.01 * rng.standard_normal((50, reference.shape[1])),
                              rng.standard_normal((50, reference.shape[1]))]).astype(np.float32)
    distances, indices = ann.ApproximateSearch(reference).nearest(queries, k=1)
    assert (indices[:50, 0] == np.arange(50)).all()
    exact_d, exact_i = knn.nearest(queries, reference, k=1)
    assert (indices[:50] == exact_i[:50]).all() and (distances[:50] == exact_d[:50]).all()


def test_the_switch_is_exact_for_small_searches_and_approximate_for_large_ones(tiles):
    reference = PixelVectors(tiles["train"][0])
    # the demo's largest: curate's 3 classes x 200 x overgenerate 3 candidates, every flip and turn
    assert isinstance(ann.searcher(reference, 8 * 3 * 200 * 3), ann.ExactSearch)
    big = int(ann.EXACT_MAX_WORK / (len(reference) * reference.dim)) + 1
    assert isinstance(ann.searcher(reference, big), ann.ApproximateSearch)
    assert isinstance(ann.searcher(reference, big, approximate=False), ann.ExactSearch)


def test_a_memorisation_verdict_on_the_approximate_path_flags_copies(tiles):
    train, train_y = tiles["train"]
    heldout, heldout_y = tiles["val"]
    originals = np.array([f"tile{i}" for i in range(len(train))])
    reference = PixelVectors(train)
    held = memorisation.nearest_originals(variants(heldout), reference, originals, approximate=True)
    thresholds = memorisation.near_copy_thresholds(held.ratios, heldout_y, int(train_y.max()) + 1, 1.0)
    picked = np.random.default_rng(4).choice(len(train), 40, replace=False)
    candidates = np.concatenate([train[picked[:20]], dihedral_variant(train[picked[20:]], 6), tiles["test"][0]])
    check = memorisation.check_copies([pixel_vectors(v) for v in dihedral_variants(candidates)], reference,
                                      originals, train_y, thresholds, approximate=True)
    assert check.flagged[:40].all() and (check.found.d1[:40] == 0).all()
    assert (check.found.index[:40] == picked).all()
    assert check.flagged[40:].mean() <= 0.1  # new tissue is not


def test_reduced_distances_skip_candidates_without_changing_a_result(tiles, monkeypatch):
    # 32 px averaged to 16 px: a reduced distance never passes the full one, so a candidate whose
    # reduced distance passes the k-th exact distance found cannot be among the k nearest
    train = tiles["train"][0]
    queries = np.concatenate([noisy(train[:40], 4, 5), tiles["val"][0]])
    search = ann.ApproximateSearch(PixelVectors(train))
    assert search.bounds
    computed = []
    fill = knn._fill_exact
    monkeypatch.setattr(knn, "_fill_exact", lambda exact, q, r, c, wanted: (computed.append(int(wanted.sum())),
                                                                           fill(exact, q, r, c, wanted)))
    runs = []
    for bounds in (True, False):
        search.bounds, computed[:] = bounds, []
        runs.append((search.nearest(PixelVectors(queries, 2), k=2), sum(computed)))
    (with_bounds, pairs), (without, all_pairs) = runs
    assert with_bounds[0].tobytes() == without[0].tobytes() and with_bounds[1].tobytes() == without[1].tobytes()
    assert pairs < 0.9 * all_pairs  # 75 % here; 44 % at 224 px (bench/results/near_copy_search.md)
    assert not ann.reduction_bounds(PixelVectors(np.zeros((3, 28, 28, 3), np.uint8)))  # 28 / 16: blocks overlap
