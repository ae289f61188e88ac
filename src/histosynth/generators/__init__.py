"""Generator families behind one interface: the GANs (:mod:`histosynth.gan`) and the
class-conditional diffusion model (:mod:`histosynth.generators.diffusion`), both selected by
``gan.arch``. ``train``, ``generate``/``regenerate``, the package database and the report go
through here, never to a family directly.
"""

from histosynth.generators.registry import (
    check_image_size,
    default_train_dir,
    family,
    family_name,
    known_archs,
    load_sampling_model,
    networks,
    train,
)

__all__ = ["check_image_size", "default_train_dir", "family", "family_name", "known_archs", "load_sampling_model", "networks", "train"]
