"""Run a script as ``__main__`` and write its process tree's peak memory to ``$HISTOSYNTH_PEAK_FILE``.

    python bench/stage_peak.py stages/featurenet.py

bench/stage_runs.py starts every stage through this. The ru_maxrss that ``wait4`` returns for a child
is no measure of the child alone: Linux carries the high-water mark of the memory a process had before
``exec`` over into it, and right after the fork that memory is a copy of the parent's. A stage started
by a harness holding 600 MiB reported at least 600 MiB (a stage that only imports reported 558 MiB at
30k images and 210 MiB at 9k, when the harness was smaller). So the stage reports its own peak: its
VmHWM (reset by ``exec``) and the largest ru_maxrss of the children it waited for (pool workers: their
inherited share is at most this process's RSS at the fork, which its VmHWM already counts).
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import sys
from pathlib import Path

PEAK_FILE = "HISTOSYNTH_PEAK_FILE"


def own_peak_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def children_peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux


def tree_peak_kib() -> int:
    """The largest peak RSS of this process and the children it waited for."""
    return max(own_peak_kib(), children_peak_kib())


def write_peak(path: Path) -> None:
    path.write_text(json.dumps({"own_kib": own_peak_kib(), "children_kib": children_peak_kib()}))


if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = str(Path(script).resolve().parent)  # as `python script` would have it
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        write_peak(Path(os.environ[PEAK_FILE]))
