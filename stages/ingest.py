"""DVC stage `ingest`: data.source -> data/real/{train,val,test}/<class>/*.png + manifest, reports/ingest/."""
# Defined in histosynth.pipeline.stages, with the CLI command of the same name.

from histosynth.pipeline import stage_main

if __name__ == "__main__":
    stage_main("ingest")
