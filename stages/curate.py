"""DVC stage `curate`: data/candidates + models/featurenet (cross-fitted classifiers) + data/real + data/augmented
-> data/synthetic (the kept images, MD5SUMS, manifest with scores) + reports/curate."""

from histosynth import paths
from histosynth.config import load_params
from histosynth.curate import curate
from histosynth.entry import run_guarded, setup_logging


def main() -> None:
    params = load_params(stage="curate")
    curate(params.curate, params.generate.n_per_class, paths.CANDIDATES_DIR, paths.REAL_DIR, paths.AUGMENTED_DIR,
           paths.FEATURENET_DIR, paths.SYNTHETIC_DIR, paths.CURATE_REPORT_DIR)


if __name__ == "__main__":
    setup_logging()
    run_guarded(main)
