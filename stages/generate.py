"""DVC stage `generate`: models/gan -> data/synthetic/<class>/*.png + MD5SUMS per class + manifest."""

from histosynth import paths
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging
from histosynth.generate import generate

if __name__ == "__main__":
    setup_logging()
    run_guarded(lambda: generate(load_params(stage="generate").generate, paths.GAN_DIR, paths.SYNTHETIC_DIR))
