"""DVC stage `generate`: models/gan (+ data/real's train images in generate.mode: edit) ->
data/candidates/<class>/*.png + MD5SUMS per class + manifest: generate.n_per_class x
generate.overgenerate candidates per class, for the `curate` stage."""

from histosynth import paths
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging
from histosynth.generate import generate


def main() -> None:
    params = load_params(stage="generate").generate
    generate(params.model_copy(update={"n_per_class": params.candidates_per_class}), paths.GAN_DIR,
             paths.CANDIDATES_DIR, paths.REAL_DIR)


if __name__ == "__main__":
    setup_logging()
    run_guarded(main)
