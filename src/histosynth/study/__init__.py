"""`histosynth study`: does synthetic data help on my images? The pipeline over a grid of regimes (real
images per class, long tail) x generator recipes x generator seeds, in one study folder, resumable;
one table (study.json, study.md) and one picture (study.png).

Modules: :mod:`~histosynth.study.grid` (the runs and their params), :mod:`~histosynth.study.runner`
(the steps, recorded so that none is repeated), :mod:`~histosynth.study.aggregate` (the figures and
their intervals), :mod:`~histosynth.study.outputs` (the files).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from histosynth.config import Params
from histosynth.output_policy import check_outputs, mark_as_output

log = logging.getLogger(__name__)


def run_study(params: Params, study_dir: Path | str) -> dict[str, Any]:
    """Run (or resume) the study of ``params.study`` in ``study_dir``; write and return study.json's content."""
    from histosynth.study.aggregate import study_results
    from histosynth.study.outputs import write_outputs
    from histosynth.study.runner import run_steps, steps

    study_dir = Path(study_dir)
    # a folder with files that a study did not make is refused, not filled; a study's own is resumed
    check_outputs({"study folder": study_dir})
    mark_as_output(study_dir)
    done = run_steps(steps(params, study_dir))
    result = study_results(params, study_dir)
    write_outputs(study_dir, result)
    log.info("study: %d steps run, %d done before; results in %s (study.json, study.md, study.png)",
             done["ran"], done["skipped"], study_dir)
    return result
