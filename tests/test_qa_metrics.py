"""QA metrics checked against independent computations and hand-worked examples."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from scipy.spatial.distance import cdist

from histosynth.dihedral import dihedral_variants
from histosynth.image_store import StoredImages, write_store
from histosynth.qa import knn
from histosynth.qa.metrics import colour_kl, duplicates, fid, label_agreement, memorisation, prdc
from histosynth.qa.pixel_space import PixelVectors, pixel_vectors, variants
from histosynth.qa.sampling import class_rng, draw


def random_images(rng, n, size=8, low=0, high=256):
    return rng.integers(low, high, (n, size, size, 3), dtype=np.uint8)


def test_colour_kl_matches_scipy_entropy_per_channel_averaged():
    rng = np.random.default_rng(0)
    real, synthetic = random_images(rng, 20), random_images(rng, 15, low=40, high=200)
    bins, smoothing = 16, 0.5
    got = colour_kl.compute(real, synthetic, bins=bins, smoothing=smoothing)
    expected = []
    for c in range(3):
        p = np.histogram(real[..., c], bins=bins, range=(0, 256))[0] + smoothing
        q = np.histogram(synthetic[..., c], bins=bins, range=(0, 256))[0] + smoothing
        expected.append(scipy.stats.entropy(p, q))  # normalises, natural log: KL(p || q)
    assert got["kl"] == pytest.approx(np.mean(expected), rel=1e-12)
    assert [got[f"kl_{c}"] for c in colour_kl.CHANNELS] == pytest.approx(expected, rel=1e-12)


def test_colour_kl_is_zero_for_identical_colours_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    images = random_images(rng, 10, low=50, high=200)
    assert colour_kl.compute(images, images[::-1].copy())["kl"] == pytest.approx(0.0, abs=1e-15)
    small = colour_kl.compute(images, (images + 10).astype(np.uint8))["kl"]
    large = colour_kl.compute(images, (images + 40).astype(np.uint8))["kl"]
    assert 0 < small < large


def test_fid_matches_scipy_sqrtm_on_the_same_features():
    rng = np.random.default_rng(2)
    real = rng.normal(0, 1, (300, 12)) @ rng.normal(0, 1, (12, 12))
    synthetic = rng.normal(0.3, 1.2, (200, 12)) @ rng.normal(0, 1, (12, 12))
    mu1, mu2 = real.mean(0), synthetic.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(synthetic, rowvar=False)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid.compute(real, synthetic)["fid"] == pytest.approx(expected, rel=1e-3)


def test_fid_of_a_set_with_itself_is_zero_and_too_few_samples_give_nan():
    rng = np.random.default_rng(3)
    features = rng.normal(0, 1, (100, 6))
    assert fid.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(fid.frechet_distance(features[:1], features))


def test_prdc_on_a_hand_checked_example():
    # k = 1 on a line. Real 0, 1, 3: radii 1, 1, 2. Synthetic 0.5, 10: radii 9.5, 9.5.
    # precision: 0.5 lies in the balls of 0 and 1, 10 in none           -> 1/2
    # density:   (2 + 0) balls / (k * 2 synthetic)                       -> 1
    # recall:    every real point is within 9.5 of 0.5                   -> 1
    # coverage:  0 and 1 have 0.5 within their radius 1, 3 (radius 2) not -> 2/3
    real = np.array([[0.0], [1.0], [3.0]])
    synthetic = np.array([[0.5], [10.0]])
    got = prdc.compute(real, synthetic, k=1)
    assert got == pytest.approx({"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 2 / 3})


def test_prdc_matches_the_naeem_definitions_computed_densely():
    rng = np.random.default_rng(4)
    real, synthetic, k = rng.normal(0, 1, (120, 5)), rng.normal(0.5, 1.3, (90, 5)), 5
    d_rr, d_ss, d_rs = cdist(real, real), cdist(synthetic, synthetic), cdist(real, synthetic)
    r_real = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    r_syn = np.sort(d_ss, axis=1)[:, k]
    expected = {
        "precision": (d_rs < r_real[:, None]).any(axis=0).mean(),
        "recall": (d_rs < r_syn[None, :]).any(axis=1).mean(),
        "density": (d_rs < r_real[:, None]).sum(axis=0).mean() / k,
        "coverage": (d_rs.min(axis=1) < r_real).mean(),
    }
    assert prdc.compute(real, synthetic, k=k) == pytest.approx(expected, abs=1e-9)


def test_prdc_flags_mode_collapse_and_needs_more_than_k_samples():
    rng = np.random.default_rng(5)
    real = rng.normal(0, 1, (200, 4))
    collapsed = np.repeat(real[:1], 200, axis=0)
    healthy = prdc.compute(real, rng.normal(0, 1, (200, 4)))
    broken = prdc.compute(real, collapsed)
    assert healthy["coverage"] > 0.9 and healthy["recall"] > 0.5
    assert broken["coverage"] < 0.1 and broken["recall"] < 0.05
    assert np.isnan(prdc.compute(real, real[:5], k=5)["coverage"])


def test_nearest_neighbours_match_dense_distances_across_chunks(monkeypatch):
    monkeypatch.setattr(knn, "CHUNK", 7)  # several chunks, the last one partial
    rng = np.random.default_rng(6)
    query, reference = rng.normal(5, 1, (30, 50)), rng.normal(5, 1, (40, 50))
    distances, indices = knn.nearest(query, reference, k=3)
    dense = cdist(query, reference)
    np.testing.assert_array_equal(indices, np.argsort(dense, axis=1)[:, :3])
    np.testing.assert_allclose(distances, np.sort(dense, axis=1)[:, :3], rtol=1e-5)
    radius = knn.kth_neighbour_distance(reference, 2)
    np.testing.assert_allclose(radius, np.sort(cdist(reference, reference), axis=1)[:, 2], rtol=1e-5)


@pytest.mark.parametrize("block_rows", [1, 13, 1000])
def test_the_streamed_pixel_search_finds_what_the_search_in_memory_finds(monkeypatch, block_rows):
    """Blocks of stored images give the neighbours of the pixel vectors held whole, for every flip and
    turn of the queries, and their distances exactly (summed as integers: the float32 differences of
    the search in memory round at every pixel); exact copies in the reference tie and are ranked by row."""
    rng = np.random.default_rng(8)
    reference = random_images(rng, 90)
    reference[[40, 70]] = reference[12]  # three identical rows
    query = random_images(rng, 25)
    query[:5], query[5] = reference[[3, 50, 12, 88, 0]], np.rot90(reference[12])
    stored = StoredImages.of(write_store([reference], reference.shape[1:]))
    monkeypatch.setattr(knn, "BLOCK_BYTES", block_rows * 8 * 8 * 3 * 4)
    monkeypatch.setattr(knn, "QUERY_BYTES", 7 * 8 * 8 * 3 * 4)  # several query chunks
    for k in (1, 4):
        for whole, streamed in zip(dihedral_variants(query), variants(query)):
            expected = knn.nearest(pixel_vectors(whole), pixel_vectors(reference), k)
            found = knn.nearest(streamed, PixelVectors(stored), k)
            np.testing.assert_allclose(found[0], expected[0], rtol=1e-6)
            exact = np.sqrt(((whole[:, None].astype(np.float64) - reference[found[1]]) ** 2).sum(axis=(2, 3, 4)))
            np.testing.assert_array_equal(found[0], (exact / np.float32(255 * np.sqrt(8 * 8 * 3))).astype(np.float32))
            same = np.arange(len(reference))
            same[[40, 70]] = 12  # which of three identical rows comes first is each search's choice
            np.testing.assert_array_equal(same[found[1]], same[expected[1]])
            exact_ties = found[0][:, 1:] == found[0][:, :-1]
            assert (found[1][:, 1:] > found[1][:, :-1])[exact_ties].all()  # equal distances: by row
    assert knn.nearest(PixelVectors(query), PixelVectors(stored), 3)[1][2].tolist() == [12, 40, 70]


def test_an_exact_copy_is_at_distance_exactly_zero_despite_large_norms():
    rng = np.random.default_rng(7)
    reference = rng.uniform(0, 1, (50, 3072)).astype(np.float32) + 100  # large norms: cancellation
    distances, indices = knn.nearest(reference[[3, 17]], reference)
    assert distances[:, 0].tolist() == [0.0, 0.0] and indices[:, 0].tolist() == [3, 17]


def test_label_agreement_and_duplicates():
    assert label_agreement.compute(np.array([2, 2, 1, 2]), 2)["label_agreement"] == 0.75
    rng = np.random.default_rng(8)
    images = random_images(rng, 5)
    repeated = np.concatenate([images, images[:2], images[:1]])
    got = duplicates.compute(duplicates.pixel_md5s(repeated))
    assert got == {"duplicates": 3, "duplicate_share": 3 / 8}
    assert duplicates.compute(duplicates.pixel_md5s(images))["duplicates"] == 0


def test_memorisation_thresholds_follow_the_nearest_training_images_class():
    heldout = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    heldout_labels = np.array([0, 0, 0, 1, 1, 1])
    thresholds = memorisation.near_copy_thresholds(heldout, heldout_labels, 3, percentile=50)
    assert thresholds.tolist() == [2.0, 20.0, np.median(heldout)]  # class 2: no held-out images -> pooled
    flagged = memorisation.near_copies(np.array([1.5, 1.5, 0.0, 25.0]), np.array([0, 1, 0, 1]), thresholds)
    assert flagged.tolist() == [True, True, True, False]


def test_draws_are_reproducible_per_seed_class_and_purpose():
    first = draw(100, 10, class_rng(0, 1, "kl"))
    assert np.array_equal(first, draw(100, 10, class_rng(0, 1, "kl")))
    assert not np.array_equal(first, draw(100, 10, class_rng(0, 2, "kl")))
    assert not np.array_equal(first, draw(100, 10, class_rng(0, 1, "prdc")))
    assert len(draw(5, 10, class_rng(0, 1, "kl"))) == 5
