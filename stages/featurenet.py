"""DVC stage `featurenet`: data/real -> models/featurenet (domain feature net for QA) + reports/featurenet."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":  # the cross-fitted copies train in spawned processes, which import this file
    stage_main("featurenet")
