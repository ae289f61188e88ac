"""Curation: over-generated candidates scored per image; the best-behaved ones ship."""

from histosynth.curate.stage import curate

__all__ = ["curate"]
