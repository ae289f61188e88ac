"""Generator families behind one interface: the GANs (:mod:`histosynth.generators.gan`) and the
class-conditional diffusion model (:mod:`histosynth.generators.diffusion`), both selected by
``gan.arch``. ``train``, ``generate``/``regenerate``, the package database and the report go
through here, never to a family directly.
"""

from histosynth.generators.registry import (
    default_train_dir,
    family,
    family_name,
    known_archs,
    load_sampling_model,
    networks,
    train,
)

__all__ = ["default_train_dir", "family", "family_name", "known_archs", "load_sampling_model", "networks", "train"]
