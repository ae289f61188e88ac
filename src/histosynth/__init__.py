"""histosynth: versioned real + GAN-synthesised microscopy datasets."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_package"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import histosynth` stays cheap (no pandas or pandera until a package is read).
    if name == "load_package":
        from histosynth.package.load import load_package

        return load_package
    raise AttributeError(f"module 'histosynth' has no attribute {name!r}")
