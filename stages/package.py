"""DVC stage `package`: data/real + data/synthetic + models/gan + reports/qa -> data/package."""

from histosynth import paths
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging
from histosynth.package.stage import build_package

if __name__ == "__main__":
    setup_logging()
    run_guarded(lambda: build_package(load_params(stage="package"), paths.REAL_DIR, paths.SYNTHETIC_DIR, paths.GAN_DIR,
                                      paths.QA_REPORT_DIR / "metrics.json", paths.PACKAGE_DIR))
