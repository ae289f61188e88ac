"""The memorisation test on real tissue: the demo's IHC tiles (no training, no network).

Degraded, flipped or rotated copies of training tiles (what a GAN that memorised would emit)
and copies of their affine children must be flagged, while new tissue, even blurred the way an
under-trained generator blurs, must not be.
"""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from conftest import builtin_tiles
from histosynth.dihedral import dihedral_variant, dihedral_variants
from histosynth.qa.evaluate import pixel_vectors
from histosynth.qa.metrics import memorisation

PERCENTILE = 1.0


@pytest.fixture(scope="module")
def tiles():
    out = builtin_tiles()
    train, train_y = out["train"]
    heldout = np.concatenate([out["val"][0], out["test"][0]])
    heldout_y = np.concatenate([out["val"][1], out["test"][1]])
    return train, train_y, heldout, heldout_y


def flagged_shares(tiles, candidates: np.ndarray, extra_reference: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> tuple[float, float]:
    """(ratio-test share, raw-distance share) of ``candidates`` flagged against the training tiles.

    ``extra_reference``: (images, index of the training tile each was made from), searched too
    and counted as that tile (affine children).
    """
    train, train_y, heldout, heldout_y = tiles
    reference, originals, reference_y = train, np.arange(len(train)), train_y
    if extra_reference is not None:
        images, parents = extra_reference
        reference = np.concatenate([train, images])
        originals, reference_y = np.concatenate([originals, parents]), np.concatenate([train_y, train_y[parents]])

    def search(images):
        return memorisation.nearest_originals([pixel_vectors(v) for v in dihedral_variants(images)],
                                              pixel_vectors(reference), originals)

    held, cand = search(heldout), search(candidates)
    nearest_y = reference_y[cand.index]
    n_classes = int(train_y.max()) + 1
    ratio_thr = memorisation.near_copy_thresholds(held.ratios, heldout_y, n_classes, PERCENTILE)
    dist_thr = memorisation.near_copy_thresholds(held.d1, heldout_y, n_classes, PERCENTILE)
    by_ratio = memorisation.near_copies(cand.ratios, nearest_y, ratio_thr)
    by_distance = memorisation.near_copies(cand.d1, nearest_y, dist_thr)
    return float(by_ratio.mean()), float(by_distance.mean())


def degrade(images: np.ndarray, how: str) -> np.ndarray:
    x = images.astype(np.float64)
    x = {"noise": lambda: x + np.random.default_rng(0).normal(0, 8, x.shape),
         "blur": lambda: gaussian_filter(x, sigma=(0, 1, 1, 0)),
         "shift": lambda: np.roll(x, 1, axis=2),
         "brighten": lambda: x + 10}[how]()
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("how", ["noise", "blur", "shift", "brighten"])
def test_degraded_copies_of_training_tiles_are_flagged(tiles, how):
    train = tiles[0]
    picked = train[np.random.default_rng(1).choice(len(train), 120, replace=False)]
    by_ratio, _ = flagged_shares(tiles, degrade(picked, how))
    assert by_ratio >= 0.9


@pytest.mark.parametrize("variant", [1, 2, 4, 6])
def test_flipped_and_rotated_copies_of_training_tiles_are_flagged(tiles, variant):
    train = tiles[0]
    picked = train[np.random.default_rng(2).choice(len(train), 120, replace=False)]
    by_ratio, _ = flagged_shares(tiles, dihedral_variant(picked, variant))
    assert by_ratio == 1.0


def test_copies_of_affine_children_are_flagged_and_children_do_not_hide_their_parent(tiles):
    train = tiles[0]
    parents = np.random.default_rng(3).choice(len(train), 120, replace=False)
    # A child close to its parent: without the "same original" rule the child would be the
    # second-nearest image of a copy of its parent, and the ratio near 1 would hide the copy.
    children = degrade(train[parents], "blur")
    by_ratio, _ = flagged_shares(tiles, np.roll(children, 1, axis=2), extra_reference=(children, parents))
    assert by_ratio >= 0.9
    copies_of_parents, _ = flagged_shares(tiles, train[parents], extra_reference=(children, parents))
    assert copies_of_parents == 1.0


def test_exact_copies_have_ratio_zero_and_a_lone_original_is_undecided():
    found = memorisation.NearestOriginals(np.array([0.0, 1.0, 1.0]), np.array([0.0, 2.0, np.inf]), np.zeros(3, int))
    assert list(found.ratios) == [0.0, 0.5, 1.0]


def test_nearest_originals_merge_variants_and_skip_rows_of_the_same_original():
    reference = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0]])  # rows 0 and 1 are one original
    originals = np.array(["a", "a", "b"])
    found = memorisation.nearest_originals([np.array([[0.05, 0.0]]), np.array([[4.0, 0.0]])], reference, originals)
    assert found.d1[0] == pytest.approx(0.05) and found.index[0] in (0, 1)
    assert found.d2[0] == pytest.approx(1.0)  # the second variant is 1.0 from original b


def test_held_out_tissue_is_rarely_flagged_and_blurring_it_does_not_change_that(tiles):
    heldout = tiles[2]
    by_ratio, _ = flagged_shares(tiles, heldout)
    assert by_ratio <= 0.05
    blurred_by_ratio, blurred_by_distance = flagged_shares(tiles, degrade(heldout, "blur"))
    # Raw nearest distances call a blurry non-copy "memorised"; the ratio test does not.
    assert blurred_by_distance > 3 * blurred_by_ratio
    assert blurred_by_ratio <= 0.1


# Edits of real images (generate.mode: edit): close to their own source by design, still copies when
# they kept its pixels or when they reproduce another training image. A blend w * tile + (1 - w) * other
# tile of the class stands in for an edit that moved a share 1 - w of the way to another image.


def edit_check(tiles, candidates: np.ndarray, sources: np.ndarray | None) -> memorisation.CopyCheck:
    """``check_copies`` of ``candidates`` against the training tiles; ``sources``: index of each edit's tile."""
    train, train_y, heldout, heldout_y = tiles
    originals = np.array([f"tile{i}" for i in range(len(train))])
    held = memorisation.nearest_originals([pixel_vectors(v) for v in dihedral_variants(heldout)],
                                          pixel_vectors(train), originals)
    thresholds = memorisation.near_copy_thresholds(held.ratios, heldout_y, int(train_y.max()) + 1, PERCENTILE)
    return memorisation.check_copies([pixel_vectors(v) for v in dihedral_variants(candidates)], pixel_vectors(train),
                                     originals, train_y, thresholds, None if sources is None else originals[sources])


def blends(tiles, weight: float, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(images, source index): 120 training tiles each moved 1 - weight of the way to a held-out tile of its class."""
    train, train_y, heldout, heldout_y = tiles
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(train), 120, replace=False)
    partners = np.array([rng.choice(np.flatnonzero(heldout_y == train_y[s])) for s in sources])
    mixed = weight * train[sources].astype(np.float64) + (1 - weight) * heldout[partners]
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8), sources


def test_an_edit_is_not_a_copy_for_being_close_to_its_own_source(tiles):
    edits, sources = blends(tiles, 0.7)
    assert edit_check(tiles, edits, sources).flagged.mean() <= 0.05
    assert edit_check(tiles, edits, None).flagged.mean() >= 0.8  # the same images, their source unknown


@pytest.mark.parametrize("how", ["verbatim", "noise", "rotated"])
def test_a_copy_of_another_training_image_is_flagged_whatever_source_it_names(tiles, how):
    train = tiles[0]
    picked = np.random.default_rng(5).choice(len(train), 120, replace=False)
    copies = {"verbatim": train[picked], "noise": degrade(train[picked], "noise"),
              "rotated": dihedral_variant(train[picked], 1)}[how]
    check = edit_check(tiles, copies, np.roll(picked, 1))  # each names another tile as its source
    assert check.flagged.mean() >= (1.0 if how != "noise" else 0.9)
    assert not check.copies_source.any()


def test_an_edit_that_kept_its_sources_pixels_is_a_copy(tiles):
    train = tiles[0]
    picked = np.random.default_rng(6).choice(len(train), 120, replace=False)
    verbatim = edit_check(tiles, train[picked], picked)
    assert verbatim.copies_source.all() and verbatim.flagged.all() and (verbatim.source_ratio == 0).all()
    assert (verbatim.ratios > 0).all()  # no other original is that close: only the source test catches it
    assert edit_check(tiles, dihedral_variant(train[picked], 6), picked).copies_source.all()
    near_zero_strength, sources = blends(tiles, 0.9)  # a tenth of the way to another image
    check = edit_check(tiles, near_zero_strength, sources)
    assert check.copies_source.mean() >= 0.95 and check.flagged.mean() >= 0.95
    assert np.isnan(edit_check(tiles, train[picked], None).source_ratio).all()  # samples have no source


def test_nearest_originals_can_leave_out_each_querys_own_original():
    reference = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [3.0, 0.0]])  # rows 0 and 1 are one original
    originals = np.array(["a", "a", "b", "c"])
    query = [np.array([[0.0, 0.0], [0.0, 0.0]])]
    found = memorisation.nearest_originals(query, reference, originals, exclude=np.array(["a", ""]))
    assert list(found.d1) == [1.0, 0.0] and list(found.d2) == [3.0, 1.0]
    assert list(memorisation.distances_to_originals(query, reference, originals, np.array(["b", "zz"]))) == \
        [1.0, np.inf]
