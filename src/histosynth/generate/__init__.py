"""Sampling synthetic images from a trained generator: the ``generate`` stage and CLI command."""

from histosynth.generate.run import generate, regenerate

__all__ = ["generate", "regenerate"]
