"""DVC stage `augment`: real train split -> data/augmented/<class>/*.png + manifest + previews."""

from histosynth import paths
from histosynth.augment import augment
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging

if __name__ == "__main__":
    setup_logging()
    run_guarded(lambda: augment(load_params(stage="augment").augment, paths.REAL_DIR, paths.AUGMENTED_DIR,
                                paths.AUGMENT_REPORT_DIR))
