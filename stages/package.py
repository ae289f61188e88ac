"""DVC stage `package`: data/real + data/synthetic + models/gan + reports/qa -> data/package."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("package")
