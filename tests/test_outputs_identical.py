"""Outputs byte-identical to another revision's, for a change that must not alter a byte (a refactor):
the demo at a tiny budget run by `dvc repro` with the code of the revision named by
HISTOSYNTH_BASELINE_REV (e.g. ``main``), and by histosynth.pipeline.run_pipeline with this checkout's
code, every output file compared. It runs the pipeline twice, so it runs only when asked:

    HISTOSYNTH_BASELINE_REV=main python -m pytest tests/test_outputs_identical.py

Without it, tests/test_pipeline_e2e.py compares this checkout's in-process pipeline with its own
`dvc repro` of the same params on every run.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dvc_project import REPO, TINY_PARAMS, env, make_project, pipeline_outputs, rerun_in_process, run

BASELINE_ENV = "HISTOSYNTH_BASELINE_REV"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get(BASELINE_ENV),
                                 reason=f"set {BASELINE_ENV}=<git revision> to compare with that revision's outputs")]


def test_every_output_is_the_baseline_revisions(tmp_path: Path) -> None:
    revision = os.environ[BASELINE_ENV]
    source = tmp_path / "source"
    source.mkdir()
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=REPO, capture_output=True, check=True)
    tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(source, filter="data")
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    make_project(baseline, TINY_PARAMS, source=source)
    # the stage scripts import the baseline's own code
    repro = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=baseline, capture_output=True, text=True,
                           env={**env(), "PYTHONPATH": str(baseline / "src")})
    assert repro.returncode == 0, repro.stdout + repro.stderr
    run(baseline, "git", "add", "-A")
    run(baseline, "git", "commit", "-qm", "baseline")
    work = tmp_path / "work"
    work.mkdir()
    expected, written = pipeline_outputs(baseline), pipeline_outputs(rerun_in_process(baseline, work))
    assert len(written) > 100
    assert sorted(path for path in expected.keys() | written.keys() if expected.get(path) != written.get(path)) == []
