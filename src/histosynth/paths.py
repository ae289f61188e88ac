"""Fixed output locations (DESIGN.md "Fixed names"), relative to the project root."""

from pathlib import Path

MANIFEST_NAME = "manifest.parquet"  # beside the class folders of every image folder (histosynth.manifest)

RAW_DIR = Path("data/raw")
REAL_DIR = Path("data/real")
AUGMENTED_DIR = Path("data/augmented")
GAN_DIR = Path("models/gan")
FEATURENET_DIR = Path("models/featurenet")
CANDIDATES_DIR = Path("data/candidates")
SYNTHETIC_DIR = Path("data/synthetic")
PACKAGE_DIR = Path("data/package")
REPORTS_DIR = Path("reports")
INGEST_REPORT_DIR = REPORTS_DIR / "ingest"
AUGMENT_REPORT_DIR = REPORTS_DIR / "augment"
TRAIN_REPORT_DIR = REPORTS_DIR / "train"
FEATURENET_REPORT_DIR = REPORTS_DIR / "featurenet"
CURATE_REPORT_DIR = REPORTS_DIR / "curate"
QA_REPORT_DIR = REPORTS_DIR / "qa"
BENCHMARK_REPORT_DIR = REPORTS_DIR / "benchmark"
REPORT_HTML = REPORTS_DIR / "index.html"

# What the stages replace whole (histosynth.fsutil.atomic_output_dir, atomic_write_text): the
# places where a stage killed outright can leave a temporary beside its output.
REPLACED_OUTPUTS = (REAL_DIR, AUGMENTED_DIR, CANDIDATES_DIR, SYNTHETIC_DIR, PACKAGE_DIR, FEATURENET_DIR,
                    INGEST_REPORT_DIR, AUGMENT_REPORT_DIR, FEATURENET_REPORT_DIR, CURATE_REPORT_DIR, QA_REPORT_DIR,
                    BENCHMARK_REPORT_DIR, REPORT_HTML)
