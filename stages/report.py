"""DVC stage `report`: data/ + reports/ -> reports/index.html, one self-contained page."""

from pathlib import Path

from histosynth.entry import run_guarded, setup_logging
from histosynth.report import build_report

if __name__ == "__main__":
    setup_logging()
    run_guarded(lambda: build_report(Path(".")))
