"""DVC stage `qa`: data/real (train, val) + data/augmented + data/synthetic + models/featurenet -> reports/qa;
fails when a gate fails."""

from histosynth import paths
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging
from histosynth.qa.run import run_qa

if __name__ == "__main__":
    setup_logging()
    run_guarded(lambda: run_qa(load_params(stage="qa").qa, paths.REAL_DIR, paths.SYNTHETIC_DIR, paths.FEATURENET_DIR,
                               paths.QA_REPORT_DIR, paths.AUGMENTED_DIR))
