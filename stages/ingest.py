"""DVC stage `ingest`: data.source -> data/real/{train,val,test}/<class>/*.png + manifest, reports/ingest/."""

from histosynth import paths
from histosynth.config import load_params
from histosynth.data.ingest import ingest
from histosynth.entry import run_guarded, setup_logging

if __name__ == "__main__":
    setup_logging()
    run_guarded(lambda: ingest(load_params(stage="ingest").data, paths.REAL_DIR, paths.INGEST_REPORT_DIR))
