"""Each synthetic image's latent vector, derived from (seed, class, index) alone.

Every image draws its latent from its own random stream (a numpy ``SeedSequence`` of the
three numbers), so an image never depends on how many images were asked for, on the batch it
was generated in, or on the order of generation: generating 1000 per class reproduces the
200 of an earlier run as its first 200.
"""

from __future__ import annotations

import numpy as np


def image_latent(seed: int, label: int, index: int, latent_dim: int) -> np.ndarray:
    """The N(0, 1) latent vector (float32, ``latent_dim``) of image ``index`` of class ``label``."""
    rng = np.random.default_rng(np.random.SeedSequence((seed, label, index)))
    return rng.standard_normal(latent_dim, dtype=np.float32)


def latents(seed: int, label: int, start: int, count: int, latent_dim: int) -> np.ndarray:
    """Latents of images ``start .. start + count - 1`` of class ``label``, shape (count, latent_dim)."""
    out = np.empty((count, latent_dim), np.float32)
    for row, index in enumerate(range(start, start + count)):
        out[row] = image_latent(seed, label, index, latent_dim)
    return out
