"""DVC stage `generate`: models/gan (+ data/real's train images in generate.mode: edit) ->
data/candidates/<class>/*.png + MD5SUMS per class + manifest: generate.n_per_class x
generate.overgenerate candidates per class, for the `curate` stage."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("generate")
