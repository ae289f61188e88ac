"""DVC stage `benchmark`: data/package + data/augmented -> reports/benchmark (metrics, ROC, confusion)."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("benchmark")
