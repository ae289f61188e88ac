"""Rudi-style affine augmentation: the real train split balanced to ``augment.per_class`` per class."""

from histosynth.augment.stage import augment

__all__ = ["augment"]
