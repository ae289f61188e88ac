"""The pipeline's stages, defined once (:mod:`histosynth.pipeline.stages`), and how they run
(:mod:`histosynth.pipeline.run`): as a DVC stage script, as a CLI command, or in order in a project
folder in this process::

    from histosynth.pipeline import run_pipeline
    run_pipeline(params, Path("work/run-1"), until="qa")   # ingest ... qa, in work/run-1/data, models, reports
"""

from histosynth.pipeline.definition import Slot, Stage, StageIO, Tracked
from histosynth.pipeline.run import run_pipeline, run_stage, stage_main
from histosynth.pipeline.stages import NAMES, STAGES, stage

__all__ = ["NAMES", "STAGES", "Slot", "Stage", "StageIO", "Tracked", "run_pipeline", "run_stage", "stage",
           "stage_main"]
