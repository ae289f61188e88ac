"""DVC stage `curate`: data/candidates + models/featurenet (cross-fitted classifiers) + data/real + data/augmented
-> data/synthetic (the kept images, MD5SUMS, manifest with scores) + reports/curate."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("curate")
