"""Progress bars: the plain ones every stage draws and the training bar (elapsed time, ETA, figures,
resumed start), when they are drawn, and log lines written while a bar is open."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from histosynth.progress import PROGRESS_ENV, EpochProgress, bar, bars_enabled, format_duration
from terminal import screen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_epochs(progress: EpochProgress, clock: Clock, first: int, last: int, seconds: float = 10.0,
               units: int = 50) -> None:
    """Epochs ``first..last`` (1-based) of ``units`` each, ``seconds`` each, a probe every 4th epoch."""
    for epoch in range(first, last + 1):
        progress.begin_epoch(units)
        for _ in range(5):
            clock.now += seconds / 5
            progress.update(units // 5)
        progress.end_epoch(epoch, {"d_loss": 1.0 / epoch, "g_loss": 2.0, "probe": 0.75 if epoch % 4 == 0 else None})


def test_elapsed_and_eta_count_from_the_resumed_epoch() -> None:
    clock = Clock()
    progress = EpochProgress("dcgan", start_epoch=2, total_epochs=10, unit="img", enabled=False, clock=clock)
    assert progress.eta() is None and progress.timing() == "0:00 elapsed, ETA ?"
    run_epochs(progress, clock, 3, 4)
    assert progress.elapsed() == 20 and progress.eta() == pytest.approx(60)  # 6 epochs left at 10 s each
    progress.begin_epoch(50)
    clock.now += 5
    progress.update(25)  # half of epoch 5
    assert progress.epochs_done == 4.5 and progress.eta() == pytest.approx(55)
    assert progress.describe() == ("dcgan epoch 4/10: d_loss 0.25, g_loss 2, probe 0.75, 5 img/s; "
                                   "0:25 elapsed, ETA 0:55")


def test_a_figure_from_an_earlier_epoch_says_which() -> None:
    clock = Clock()
    progress = EpochProgress("sagan", start_epoch=0, total_epochs=6, enabled=False, clock=clock)
    run_epochs(progress, clock, 1, 5, units=0)  # units 0: no throughput
    assert progress.describe() == "sagan epoch 5/6: d_loss 0.2, g_loss 2, probe 0.75 (epoch 4); 0:50 elapsed, ETA 0:10"


def test_one_bar_over_all_epochs_starting_at_the_resumed_epoch() -> None:
    clock, out = Clock(), io.StringIO()
    with EpochProgress("dcgan", start_epoch=200, total_epochs=400, unit="img", enabled=True, file=out,
                       clock=clock, redraw_every_s=0) as progress:
        first_frame = screen(out.getvalue())
        run_epochs(progress, clock, 201, 400, seconds=30)
    frames = out.getvalue().split("\r")
    assert first_frame == ["dcgan epoch 201/400  50%|##########          | 0:00 elapsed, ETA ?"]
    assert len(screen(out.getvalue())) == 1  # one bar, redrawn in place, left on screen at the end
    assert screen(out.getvalue())[0] == ("dcgan epoch 400/400 100%|####################| 1:40:00 elapsed, ETA 0:00 | "
                                         "d_loss 0.0025, g_loss 2, probe 0.75, 2 img/s")
    # within an epoch too, at the run's average pace: a fifth of epoch 201 in 6 s leaves 199.8 epochs of 30 s
    assert "dcgan epoch 201/400  50%|##########          | 0:06 elapsed, ETA 1:39:54 | 2 img/s" in frames


def test_eta_formats() -> None:
    assert [format_duration(s) for s in (None, 0, 59.6, 61, 3725, 90000)] == ["?", "0:00", "1:00", "1:01",
                                                                               "1:02:05", "25:00:00"]


def test_bars_only_on_a_terminal_unless_switched(monkeypatch: pytest.MonkeyPatch) -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.delenv(PROGRESS_ENV, raising=False)
        assert bars_enabled(terminal) and not bars_enabled(io.StringIO())
        monkeypatch.setenv(PROGRESS_ENV, "0")
        assert not bars_enabled(terminal)
        monkeypatch.setenv(PROGRESS_ENV, "1")
        assert bars_enabled(io.StringIO())
    os.close(leader)
    monkeypatch.delenv(PROGRESS_ENV)
    out = io.StringIO()
    with EpochProgress("dcgan", 0, 3, file=out) as progress:  # not a terminal: nothing drawn
        progress.begin_epoch(10)
        progress.update(10)
        progress.end_epoch(1, {"d_loss": 0.5})
    assert out.getvalue() == ""


def test_every_bar_obeys_histosynth_progress(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    for setting, drawn in (("0", False), ("1", True)):
        monkeypatch.setenv(PROGRESS_ENV, setting)
        assert sum(bar(range(5), desc="counting", unit="img")) == 10  # iterated whether drawn or not
        assert ("counting: 100%" in capsys.readouterr().err) == drawn
    with bar(total=3, desc="by hand") as by_hand:
        by_hand.update(3)
    assert "by hand: 100%" in capsys.readouterr().err
    list(bar(range(5), desc="too quick to watch", min_total=6))
    list(bar(range(5), desc="another process", enabled=False))
    assert capsys.readouterr().err == ""


LOG_WHILE_A_BAR_IS_OPEN = """
import logging
from histosynth.entry import setup_logging
from histosynth.progress import bar as progress_bar
setup_logging()
with progress_bar(total=10, desc="benchmark", unit="training", mininterval=0) as bar:
    bar.update(3)
    logging.getLogger("histosynth.benchmark.training").info("run 0 done")
    bar.update(7)
"""


def test_a_log_line_written_while_a_bar_is_open_gets_its_own_line() -> None:
    # bytes, not text: text mode would turn the bar's carriage returns into line breaks
    done = subprocess.run([sys.executable, "-c", LOG_WHILE_A_BAR_IS_OPEN], capture_output=True, timeout=60,
                          env={**os.environ, PROGRESS_ENV: "1"})
    assert done.returncode == 0, done.stderr
    lines = screen(done.stderr.decode())
    assert len(lines) == 2, lines
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO histosynth\.benchmark\.training: run 0 done", lines[0]), lines
    assert lines[1].startswith("benchmark: 100%|") and "10/10" in lines[1]


def read_all(leader: int) -> bytes:
    """Everything written to a pseudo-terminal whose other end is closed: one read returns only what
    has reached the buffer so far (on a busy machine, part of the output: a CI run failed so)."""
    chunks = []
    try:
        while chunk := os.read(leader, 1 << 16):
            chunks.append(chunk)
    except OSError:  # EIO: the other end is closed and everything was read
        pass
    finally:
        os.close(leader)
    return b"".join(chunks)


def test_a_terminal_that_reports_no_size_still_shows_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new pseudo-terminal is 0x0, as under `script` or some CI runners: tqdm alone would draw nothing."""
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    leader, follower = os.openpty()
    assert os.get_terminal_size(follower).columns == 0
    clock = Clock()
    with os.fdopen(follower, "w") as terminal:
        with EpochProgress("dcgan", 0, 3, file=terminal, clock=clock) as progress:
            run_epochs(progress, clock, 1, 3)
    shown = read_all(leader).decode()
    assert screen(shown)[-1].startswith("dcgan epoch 3/3 100%|████████████████████| 0:30 elapsed, ETA 0:00 |")
