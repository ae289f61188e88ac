"""The memorisation test on real tissue: the demo's IHC tiles (no training, no network).

Degraded copies of training tiles (what a GAN that memorised would emit) must be flagged,
while new tissue, even blurred the way an under-trained generator blurs, must not be.
"""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from histosynth.config import params_from_mapping
from histosynth.data.sources.builtin_ihc import load_builtin
from histosynth.qa.evaluate import pixel_vectors
from histosynth.qa.knn import nearest
from histosynth.qa.metrics import memorisation

PERCENTILE = 1.0


@pytest.fixture(scope="module")
def tiles():
    source = load_builtin(params_from_mapping({"data": {"source": "builtin:ihc"}}).data)
    out = {}
    for split in ("train", "val", "test"):
        part = source.read_split(split)
        out[split] = (np.stack([part.image(i) for i in range(len(part.labels))]), part.labels)
    train, train_y = out["train"]
    heldout = np.concatenate([out["val"][0], out["test"][0]])
    heldout_y = np.concatenate([out["val"][1], out["test"][1]])
    return train, train_y, heldout, heldout_y


def flagged_shares(tiles, candidates: np.ndarray) -> tuple[float, float]:
    """(ratio-test share, raw-distance share) of ``candidates`` flagged against the training tiles."""
    train, train_y, heldout, heldout_y = tiles
    reference = pixel_vectors(train)
    held_d, _ = nearest(pixel_vectors(heldout), reference, k=2)
    cand_d, cand_i = nearest(pixel_vectors(candidates), reference, k=2)
    nearest_y = train_y[cand_i[:, 0]]
    n_classes = int(train_y.max()) + 1
    ratio_thr = memorisation.near_copy_thresholds(memorisation.distance_ratios(held_d), heldout_y, n_classes, PERCENTILE)
    dist_thr = memorisation.near_copy_thresholds(held_d[:, 0], heldout_y, n_classes, PERCENTILE)
    by_ratio = memorisation.near_copies(memorisation.distance_ratios(cand_d), nearest_y, ratio_thr)
    by_distance = memorisation.near_copies(cand_d[:, 0], nearest_y, dist_thr)
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


def test_exact_copies_are_flagged_even_when_the_training_set_holds_duplicates():
    assert list(memorisation.distance_ratios(np.array([[0.0, 0.0], [0.0, 2.0], [1.0, 2.0]]))) == [0.0, 0.0, 0.5]


def test_held_out_tissue_is_rarely_flagged_and_blurring_it_does_not_change_that(tiles):
    heldout = tiles[2]
    by_ratio, _ = flagged_shares(tiles, heldout)
    assert by_ratio <= 0.05
    blurred_by_ratio, blurred_by_distance = flagged_shares(tiles, degrade(heldout, "blur"))
    # Raw nearest distances call a blurry non-copy "memorised"; the ratio test does not.
    assert blurred_by_distance > 3 * blurred_by_ratio
    assert blurred_by_ratio <= 0.1
