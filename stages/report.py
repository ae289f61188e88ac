"""DVC stage `report`: data/ + reports/ -> reports/index.html, one self-contained page; then the run's
summary on the terminal (histosynth.summary)."""

from pathlib import Path

from histosynth.entry import run_guarded, setup_logging
from histosynth.report import build_report
from histosynth.summary import print_summary

if __name__ == "__main__":
    setup_logging()

    def job() -> None:
        build_report(Path("."))
        print_summary(Path("."), deferrable=True)  # the last lines of `dvc repro`

    run_guarded(job)
