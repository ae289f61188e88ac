"""The publishable package (``data/package``): building, reading and verifying it."""

from histosynth.package.load import Package, load_package

__all__ = ["Package", "load_package"]
