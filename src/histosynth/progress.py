"""Progress bars: every bar histosynth draws comes from here and obeys ``HISTOSYNTH_PROGRESS``.

:func:`bar` makes a plain bar (images written, batches embedded, files hashed)::

    for path in bar(paths, desc="verify", unit="file", min_total=1000):   # none for a quick job
        ...

:class:`EpochProgress` is what a long epoch-based training run shows while it runs: one bar over
all epochs, with elapsed time, an ETA, throughput and the latest figures; and log lines that do
not break bars.

Any trainer that runs epochs (the GAN's, a diffusion model's) uses it the same way::

    with EpochProgress("dcgan", start_epoch=resumed, total_epochs=epochs, unit="img") as progress:
        for epoch in range(resumed, epochs):
            progress.begin_epoch(images_this_epoch)
            for batch in batches:
                ...
                progress.update(len(batch))           # the bar moves within the epoch too
            progress.end_epoch(epoch + 1, {"d_loss": d, "g_loss": g, "probe": accuracy_or_None})
            if worth_a_log_line:
                log.info("%s", progress.describe())   # epoch 40/400: d_loss ..., 0:41 elapsed, ETA 6:09

The bar starts at the resumed epoch (a run resumed at epoch 200 of 400 starts at 50 %), and its
ETA is the average time per epoch of this run times the epochs left.

Every bar is drawn on stderr when stderr is a terminal; ``HISTOSYNTH_PROGRESS=1`` draws it anyway,
``HISTOSYNTH_PROGRESS=0`` never (CI logs: the log lines carry the figures and timing that matter).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, TypeVar

from tqdm import tqdm

PROGRESS_ENV = "HISTOSYNTH_PROGRESS"
_ON, _OFF = {"1", "true", "yes", "on", "always"}, {"0", "false", "no", "off", "never"}

Figure = float | int | str | None
T = TypeVar("T")
Bar = tqdm  # what bar() returns


def bars_enabled(stream: IO[str] | None = None) -> bool:
    """Whether to draw progress bars on ``stream`` (default stderr): ``HISTOSYNTH_PROGRESS``, else only on a terminal."""
    setting = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _size_options(stream: IO[str]) -> dict[str, Any]:
    """tqdm's size options for ``stream``: on a terminal, follow its width (and resizes). A terminal that
    reports a 0x0 size (``script``, some CI runners) would make tqdm trim every frame to nothing."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return {}  # not a terminal: tqdm does not trim
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": 1000, "nrows": 1000}


def bar(iterable: Iterable[T] | None = None, *, desc: str, unit: str = "it", total: float | None = None,
        min_total: float = 0, leave: bool = True, mininterval: float = 0.1, enabled: bool = True) -> tqdm:
    """A progress bar over ``iterable`` (or, without one, moved by its ``update``) on stderr.

    Drawn only where :func:`bars_enabled` says so, and not for a job of fewer than ``min_total``
    items (``total``, else the iterable's length): it would be over before anyone read it. A bar
    that is not drawn still iterates and counts. ``leave``: keep the finished bar on screen;
    ``enabled=False``: never drawn (every process of a group but one).
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    file = sys.stderr
    drawn = enabled and bars_enabled(file) and (total is None or total >= min_total)
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=leave, mininterval=mininterval, file=file,
                disable=not drawn, **(_size_options(file) if drawn else {}))


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_figure(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class EpochProgress:
    """Progress of epochs ``start_epoch + 1 .. total_epochs`` (1-based), as a bar and as text.

    ``enabled``: draw the bar (None: :func:`bars_enabled`). ``clock`` returns seconds (monotonic); the
    bar is redrawn at most every ``redraw_every_s`` seconds of real time, and at the end of every epoch.
    Figures passed to :meth:`end_epoch` stay shown until replaced; one measured at an earlier
    epoch (a probe run every 10 epochs) is shown with that epoch.
    """

    def __init__(self, label: str, start_epoch: int, total_epochs: int, *, unit: str = "it",
                 enabled: bool | None = None, file: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic, redraw_every_s: float = 0.5) -> None:
        if not 0 <= start_epoch <= total_epochs:
            raise ValueError(f"start_epoch {start_epoch} is outside 0..{total_epochs}")
        self.label, self.start_epoch, self.total_epochs, self.unit = label, start_epoch, total_epochs, unit
        self._clock = clock
        self._started = clock()
        self._epoch = start_epoch  # epochs completed
        self._fraction = 0.0  # of the epoch under way
        self._epoch_units = 0
        self._units = 0  # processed by this run, for the throughput
        self._figures: dict[str, tuple[float | int | str, int]] = {}
        file = sys.stderr if file is None else file
        self._bar: _Bar | None = None
        if bars_enabled(file) if enabled is None else enabled:
            self._bar = _Bar(self, total=total_epochs, initial=start_epoch, file=file, leave=True, smoothing=0,
                             mininterval=redraw_every_s, **_size_options(file),
                             bar_format="{label} epoch {epoch}/{total_epochs} {percentage:3.0f}%|{bar:20}| {status}")

    # -- feeding it -------------------------------------------------------------------------------

    def begin_epoch(self, units: int) -> None:
        """An epoch of ``units`` (images, batches) starts; :meth:`update` counts them."""
        self._epoch_units, self._fraction = max(0, units), 0.0

    def update(self, units: int) -> None:
        """``units`` more of the current epoch are done."""
        self._units += units
        if self._epoch_units:
            step = min(units / self._epoch_units, 1.0 - self._fraction)
            self._fraction += step
            if self._bar is not None:
                self._bar.update(step)

    def end_epoch(self, epoch: int, figures: Mapping[str, Figure] | None = None) -> None:
        """Epoch ``epoch`` (1-based) is done; ``figures`` measured in it (None: not measured this epoch)."""
        self._epoch, self._fraction = epoch, 0.0
        for name, value in (figures or {}).items():
            if value is not None:
                self._figures[name] = (value, epoch)
        if self._bar is not None:
            self._bar.n = epoch
            self._bar.refresh()

    # -- reading it -------------------------------------------------------------------------------

    @property
    def epochs_done(self) -> float:
        """Epochs completed so far, the current one's share included."""
        return self._epoch + self._fraction

    def elapsed(self) -> float:
        """Seconds since this run started (a resumed run counts from its resumption)."""
        return self._clock() - self._started

    def eta(self) -> float | None:
        """Seconds left at this run's average pace; None before any progress."""
        done = self.epochs_done - self.start_epoch
        if done <= 0:
            return None
        return self.elapsed() / done * (self.total_epochs - self.epochs_done)

    def rate(self) -> float | None:
        elapsed = self.elapsed()
        return self._units / elapsed if self._units and elapsed > 0 else None

    def timing(self) -> str:
        return f"{format_duration(self.elapsed())} elapsed, ETA {format_duration(self.eta())}"

    def figures(self) -> str:
        """``d_loss 0.68, g_loss 2.4, probe 0.91 (epoch 40), 506 img/s``."""
        parts = [f"{name} {_format_figure(value)}" + (f" (epoch {epoch})" if epoch != self._epoch else "")
                 for name, (value, epoch) in self._figures.items()]
        rate = self.rate()
        if rate is not None:
            parts.append(f"{rate:.0f} {self.unit}/s")
        return ", ".join(parts)

    def describe(self) -> str:
        """A log line for the last finished epoch: ``dcgan epoch 40/400: <figures>; 0:41 elapsed, ETA 6:09``."""
        figures = self.figures()
        return (f"{self.label} epoch {self._epoch}/{self.total_epochs}: {figures + '; ' if figures else ''}"
                f"{self.timing()}")

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Bar(tqdm):
    """tqdm with the bar's text (current epoch, timing, figures) taken from an :class:`EpochProgress`."""

    def __init__(self, progress: EpochProgress, **kwargs: Any) -> None:
        self._progress = progress
        super().__init__(**kwargs)

    @property
    def format_dict(self) -> dict[str, Any]:
        d = super().format_dict
        p = self._progress
        figures = p.figures()
        d.update(label=p.label, total_epochs=p.total_epochs, epoch=min(p._epoch + 1, p.total_epochs),
                 status=p.timing() + (f" | {figures}" if figures else ""))
        return d


class BarSafeHandler(logging.StreamHandler):
    """A stderr handler that writes through ``tqdm.write``: an open bar is cleared, the record
    gets its own line, and the bar is drawn again below it.

    It writes to whatever ``sys.stderr`` is when a record arrives, not the stream of the moment it
    was made: a CLI run inside a test (or any caller that swaps stderr) must not keep a closed one.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
