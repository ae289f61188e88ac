"""DVC stage `augment`: real train split -> data/augmented/<class>/*.png + manifest + previews."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("augment")
