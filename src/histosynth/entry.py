"""Shared entry-point behaviour for the CLI and the DVC stage scripts: logging and exit statuses.

Exit statuses (docs/cli.md, "Errors and exit statuses", lists them for users):

====  =====================================================================================
0     success
1     ``histosynth verify`` found missing, extra or modified files (the list is printed)
2     usage error: an unknown command or option, a bad option value (click's own status)
3     configuration error: params.yaml or an option value is not allowed (ConfigError)
4     input error: data, model, package or project missing, unreadable or inconsistent
      (DataError and every other HistosynthError)
5     a quality gate failed (the QA gates with qa.enforce: true)
6     GAN training diverged (non-finite loss; the last good checkpoint is kept)
70    a bug in histosynth (an unexpected exception; the traceback is printed for a report)
130   interrupted (Ctrl-C)
141   the reader of standard output went away (``| head``): stopped quietly, as coreutils do
143   terminated (SIGTERM)
====  =====================================================================================

A full disk, a read-only or unwritable folder, a name too long (:mod:`histosynth.os_failures`)
and a refused output path (:mod:`histosynth.output_policy`) are input errors (4).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn, TypeVar

import click

from histosynth import os_failures
from histosynth.errors import ConfigError, GateFailed, HistosynthError, TrainingDiverged
from histosynth.neutralise import NeutralFormatter, lines_for_terminal
from histosynth.fsutil import readable, remove_project_temporaries
from histosynth.output_policy import current_folder
from histosynth.progress import BarSafeHandler

T = TypeVar("T")

EXIT_OK = 0
EXIT_VERIFY_FINDINGS = 1
EXIT_USAGE = 2  # click's status for usage errors; click itself exits with it
EXIT_CONFIG = 3
EXIT_INPUT = 4
EXIT_GATE = 5
EXIT_DIVERGED = 6
EXIT_BUG = 70  # sysexits.h EX_SOFTWARE
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for coreutils' `yes | head`
EXIT_TERMINATED = 143  # 128 + SIGTERM

# First match wins: subclasses before HistosynthError itself.
EXIT_CODES: tuple[tuple[type[HistosynthError], int], ...] = (
    (ConfigError, EXIT_CONFIG),
    (GateFailed, EXIT_GATE),
    (TrainingDiverged, EXIT_DIVERGED),
    (HistosynthError, EXIT_INPUT),
)


def exit_code_of(err: HistosynthError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(err, kind))


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; a record logged while a progress bar is open gets its own line above the bar."""
    level = logging.DEBUG if verbose or os.environ.get("HISTOSYNTH_DEBUG") else logging.INFO
    handler = BarSafeHandler()
    # names and paths in a record are escaped (histosynth.neutralise): a file name cannot forge a line
    handler.setFormatter(NeutralFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def error_text(message: str) -> str:
    """``error: <first line>``; further lines (a verdict table, more bad values) indented under it,
    so that a script finds exactly one line starting with ``error:`` whatever the message holds."""
    first, *rest = lines_for_terminal(message).splitlines() or [""]
    return "\n".join([f"error: {first}", *(f"  {line}" for line in rest)])


def run_guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn a HistosynthError into ``error: ...`` on stderr and its exit status.

    Set HISTOSYNTH_DEBUG=1 to see the traceback as well. SIGTERM is handled like Ctrl-C; a full
    disk and its kind (:mod:`histosynth.os_failures`) are input errors; a closed standard output
    ends the run quietly.
    """
    try:
        with os_failures.sigterm_raises():
            current_folder()  # a deleted current folder: one line, not a traceback wherever it is first needed
            remove_project_temporaries()
            return fn()
    except HistosynthError as err:
        if os.environ.get("HISTOSYNTH_DEBUG"):
            logging.getLogger("histosynth").exception("details")
        print(error_text(str(err)), file=sys.stderr)
        raise SystemExit(exit_code_of(err)) from None
    except os_failures.Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        raise SystemExit(EXIT_TERMINATED) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        os_failures.silence_stdout()
        raise SystemExit(EXIT_BROKEN_PIPE) from None
    except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
        raise  # the CLI's own ways out (typer.Exit, usage errors): click handles them
    except OSError as err:
        line = os_failures.describe(err)
        if line is None:
            _report_bug(err)
        print(error_text(line), file=sys.stderr)
        raise SystemExit(EXIT_INPUT) from None
    except Exception as err:  # noqa: BLE001 - a bug: say so, keep the traceback for the report
        _report_bug(err)


def _report_bug(err: Exception) -> NoReturn:
    traceback.print_exc(file=sys.stderr)
    print(error_text(f"internal error ({type(err).__name__}): this is a bug in histosynth; please report it "
                     "with the traceback above"), file=sys.stderr)
    raise SystemExit(EXIT_BUG) from None
