"""Untrusted text made harmless where people read it: terminals, logs and spreadsheets.

File and class names come from users and from packages fetched from elsewhere; they may hold a
newline (which could forge a line of output, e.g. ``OK: ... files intact``), an escape sequence
(which a terminal obeys) or a leading ``=`` (which a spreadsheet runs as a formula). Two rules,
used by every writer of such text:

- **Terminal and log text** (:func:`for_terminal`): every control character (C0, DEL, C1), the
  Unicode line and paragraph separators and the bidirectional overrides and isolates are shown
  as ``\\xNN`` / ``\\uNNNN``, and bytes of a name that are not UTF-8 as ``\\xNN`` (as
  :func:`histosynth.fsutil.readable` does). Printable text, accents included, is unchanged.
  The log formatter (:class:`NeutralFormatter`) applies it to every argument of a log call;
  a table built for the log keeps its line breaks when wrapped in :class:`Block`.
- **CSV cells for people** (:func:`csv_cell`, OWASP "CSV injection"): a text cell that starts
  with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, which
  spreadsheets show as text; a cell that starts with ``'`` followed by such a cell gets one more,
  so :func:`restore_csv_cell` gives back exactly what was written. Numbers stay numbers. The
  Parquet and SQL copies of the same data are exact: only the CSV files are neutralised.
"""

from __future__ import annotations

import logging
import numbers
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from histosynth.fsutil import readable

if TYPE_CHECKING:
    import pandas as pd

# C0 controls, DEL, C1 controls, line/paragraph separators, bidi embeddings/overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# OWASP: cells a spreadsheet may read as a formula or split into another cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object) -> str:
    """``text`` (or ``str(text)``) on one line, with nothing a terminal would act on (module docstring)."""
    return _UNSAFE.sub(_escaped, readable(str(text)))


def lines_for_terminal(text: object) -> str:
    """:func:`for_terminal` that keeps the line breaks: for text whose lines histosynth made."""
    return _UNSAFE_BUT_NEWLINE.sub(_escaped, readable(str(text)))


class Block(str):
    """Multi-line text made by histosynth (a table) to be logged: its line breaks are kept, any other
    control character in it is escaped."""


class _Shown(str):
    """A log argument as :func:`for_terminal` shows it; ``%r`` gives the escaped repr of the original."""

    def __new__(cls, value: object) -> _Shown:
        shown = super().__new__(cls, lines_for_terminal(value) if isinstance(value, Block) else for_terminal(value))
        shown._repr = for_terminal(repr(value))
        return shown

    def __repr__(self) -> str:
        return self._repr


def _neutral_arg(value: Any) -> Any:
    if value is None or isinstance(value, numbers.Number):
        return value  # %d, %.3f and friends need the number
    return _Shown(value)


class NeutralFormatter(logging.Formatter):
    """A formatter whose records cannot forge a log line or reach the terminal raw: every argument of
    the log call is shown with :func:`for_terminal` (a :class:`Block` keeps its line breaks)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.args:
            if isinstance(record.args, dict):
                record.args = {key: _neutral_arg(value) for key, value in record.args.items()}
            else:
                record.args = tuple(_neutral_arg(value) for value in record.args)
        record.msg = lines_for_terminal(record.msg)
        return super().format(record)


def _needs_quote(value: str) -> bool:
    return value.startswith(FORMULA_STARTS) or (value.startswith(_QUOTE) and _needs_quote(value[1:]))


def csv_cell(value: Any) -> Any:
    """A text cell as it is written to a CSV file for people (module docstring); anything else as is."""
    if isinstance(value, str) and _needs_quote(value):
        return _QUOTE + value
    return value


def restore_csv_cell(value: Any) -> Any:
    """The exact text :func:`csv_cell` was given."""
    if isinstance(value, str) and value.startswith(_QUOTE) and _needs_quote(value[1:]):
        return value[1:]
    return value


def _text_columns(frame: pd.DataFrame) -> list[str]:
    import pandas as pd  # only CSV writers need it: the CLI starts without it

    return [column for column in frame.columns
            if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column])]


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text cells (and column names) neutralised for a CSV file; numbers untouched."""
    return _map_text(frame, csv_cell)


def restore_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The inverse of :func:`csv_frame` for a frame read back from its CSV file."""
    return _map_text(frame, restore_csv_cell)


def _map_text(frame: pd.DataFrame, cell: Callable[[str], str]) -> pd.DataFrame:
    """A copy of ``frame`` with ``cell`` applied to every text cell and column name."""
    out = frame.copy()
    for column in _text_columns(frame):
        out[column] = frame[column].map(cell).astype(frame[column].dtype)
    out.columns = [cell(column) for column in frame.columns]
    return out
