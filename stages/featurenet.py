"""DVC stage `featurenet`: data/real -> models/featurenet (domain feature net for QA) + reports/featurenet."""

from histosynth import paths
from histosynth.classifier.featurenet import train_featurenet
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging
from histosynth.parallel import usable_cores

if __name__ == "__main__":
    setup_logging()
    run_guarded(lambda: train_featurenet(load_params(stage="featurenet").qa.featurenet, paths.REAL_DIR,
                                         paths.FEATURENET_DIR, paths.FEATURENET_REPORT_DIR, workers=usable_cores()))
