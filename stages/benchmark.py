"""DVC stage `benchmark`: data/package + data/augmented -> reports/benchmark (metrics, ROC, confusion)."""

from histosynth import paths
from histosynth.benchmark import run_benchmark
from histosynth.config import load_params
from histosynth.entry import run_guarded, setup_logging

if __name__ == "__main__":
    setup_logging()
    def job() -> None:
        params = load_params(stage="benchmark")
        run_benchmark(params.benchmark, params.augment, paths.PACKAGE_DIR, paths.AUGMENTED_DIR,
                      paths.BENCHMARK_REPORT_DIR)

    run_guarded(job)
