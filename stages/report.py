"""DVC stage `report`: data/ + reports/ -> reports/index.html, one self-contained page."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("report")
