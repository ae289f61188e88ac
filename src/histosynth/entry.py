"""Shared entry-point behaviour for the CLI and the DVC stage scripts."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from histosynth.errors import HistosynthError
from histosynth.progress import BarSafeHandler

T = TypeVar("T")

EXIT_USER_ERROR = 2


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; a record logged while a progress bar is open gets its own line above the bar."""
    level = logging.DEBUG if verbose or os.environ.get("HISTOSYNTH_DEBUG") else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[BarSafeHandler(sys.stderr)],
        force=True,
    )


def run_guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; turn a HistosynthError into one line on stderr and exit status 2.

    Set HISTOSYNTH_DEBUG=1 to see the traceback as well.
    """
    try:
        return fn()
    except HistosynthError as err:
        if os.environ.get("HISTOSYNTH_DEBUG"):
            logging.getLogger("histosynth").exception("details")
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
