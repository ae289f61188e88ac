"""Label-conditioned GAN architectures, selected by name (``gan.arch``).

Every generator maps ``(z: [B, latent_dim], y: [B] long)`` to images ``[B, 3, S, S]`` in [-1, 1];
every discriminator maps ``(x, y)`` to raw scores ``[B]`` (no sigmoid); projected gives ``[B, N]`` patch logits.
"""

from histosynth.generators.gan.models.registry import (
    ArchRecipe,
    build_discriminator,
    build_generator,
    check_image_size,
    get_recipe,
    known_archs,
)

__all__ = [
    "ArchRecipe",
    "build_discriminator",
    "build_generator",
    "check_image_size",
    "get_recipe",
    "known_archs",
]
