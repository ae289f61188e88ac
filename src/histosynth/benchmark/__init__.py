"""The classifier benchmark: real only vs affine augmentation vs real + synthetic vs synthetic only."""

from histosynth.benchmark.run import run_benchmark

__all__ = ["run_benchmark"]
