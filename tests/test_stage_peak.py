"""bench/stage_peak.py: a stage's peak memory as the stage's own process tree had it, not its parent's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"
MIB = 2**20

SCRIPT = """
import subprocess, sys
import numpy as np
if __name__ == "__main__":
    own = np.ones(64 * 2**20, np.uint8)  # 64 MiB here
    code = "import numpy as np; np.ones(160 * 2**20, np.uint8)"  # 160 MiB in a child
    subprocess.run([sys.executable, "-c", code], check=True)
    sys.exit(3)
"""


def test_the_peak_is_the_stage_trees_own_while_wait4_counts_the_parents(tmp_path):
    (tmp_path / "stage.py").write_text(SCRIPT)
    held = np.ones(400 * MIB, np.uint8)  # the harness holds 400 MiB when it starts the stage
    env = {**os.environ, "HISTOSYNTH_PEAK_FILE": str(tmp_path / "peak.json")}
    proc = subprocess.Popen([sys.executable, str(BENCH / "stage_peak.py"), str(tmp_path / "stage.py")], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3  # the script's exit status passes through
    assert usage.ru_maxrss * 1024 >= held.nbytes  # what the harness measured before: its own 400 MiB
    peak = json.loads((tmp_path / "peak.json").read_text())
    own, children = peak["own_kib"] * 1024, peak["children_kib"] * 1024
    assert 64 * MIB < own < 300 * MIB, peak
    assert 160 * MIB < children < 300 * MIB, peak
