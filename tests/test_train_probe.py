"""The real-vs-fake probe tells different image distributions apart and not equal ones."""

import numpy as np
from conftest import textured_image

from histosynth.generators.training.data import to_model_range
from histosynth.generators.training.probe import real_vs_fake_accuracy


def textures(n_per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([textured_image(label, 32, rng) for _ in range(n_per_class) for label in range(3)])


def test_probe_spots_fakes_of_another_distribution():
    real = to_model_range(textures(20, seed=0))
    blurred = to_model_range(textures(20, seed=1).mean(axis=(1, 2), keepdims=True).repeat(32, 1).repeat(32, 2)
                             .astype(np.uint8))  # each image flattened to its mean colour
    assert real_vs_fake_accuracy(real, blurred, seed=0) > 0.9


def test_probe_is_near_chance_on_images_of_the_same_distribution():
    real = to_model_range(textures(20, seed=0))
    same_kind = to_model_range(textures(20, seed=1))
    assert 0.3 <= real_vs_fake_accuracy(real, same_kind, seed=0) <= 0.7


def test_probe_is_seeded():
    real, fake = to_model_range(textures(6, seed=0)), to_model_range(textures(6, seed=1))
    assert real_vs_fake_accuracy(real, fake, seed=3) == real_vs_fake_accuracy(real, fake, seed=3)
