"""DVC stage `qa`: data/real (train, val) + data/augmented + data/synthetic + models/featurenet -> reports/qa;
fails when a gate fails."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("qa")
