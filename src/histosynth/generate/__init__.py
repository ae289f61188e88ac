"""Sampling synthetic images from a trained generator: the ``generate`` stage and CLI command."""

from __future__ import annotations

from typing import Any

__all__ = ["generate", "regenerate"]


def __getattr__(name: str) -> Any:
    # Lazy: importing histosynth.generate must not import torch until a sampler is needed.
    if name in __all__:
        from histosynth.generate import run

        return getattr(run, name)
    raise AttributeError(f"module 'histosynth.generate' has no attribute {name!r}")
