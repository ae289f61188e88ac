"""DVC stage `report`: data/ + reports/ -> reports/index.html, one self-contained page; then the run's
summary on the terminal (histosynth.summary)."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name (which prints no summary).

from pathlib import Path

from histosynth.pipeline import stage_main
from histosynth.summary import print_summary

if __name__ == "__main__":
    stage_main("report", then=lambda: print_summary(Path("."), deferrable=True))  # the last lines of `dvc repro`
