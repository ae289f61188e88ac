"""Reading the report's inputs.

A missing input is not an error: its section says which stage makes it (:class:`Missing`).
A malformed one is: a :class:`DataError` of one line that names the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd
from pydantic import BaseModel, ValidationError

from histosynth.errors import DataError
from histosynth.neutralise import restore_csv_frame

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Missing:
    """An input that has not been made yet, and the DVC stage that makes it (or why there is none)."""

    stage: str
    reason: str | None = None  # shown instead of "not computed: run `dvc repro <stage>`"


def read_json(path: Path, model: type[Model]) -> Model | None:
    """``path`` validated as ``model``; None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] == "json_invalid":
            problem = f"not valid JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
        else:
            where = ".".join(str(part) for part in first["loc"])
            more = f" (and {err.error_count() - 1} more problem(s))" if err.error_count() > 1 else ""
            problem = f"not the expected format: {where + ': ' if where else ''}{first['msg']}{more}"
        raise DataError(f"{path}: {problem}; rebuild it with the stage that writes it") from None


def read_table(path: Path, columns: Sequence[str], numeric: Sequence[str] | None = (),
               sep: str = ",") -> pd.DataFrame | None:
    """The CSV/TSV at ``path``, which must have ``columns`` (those in ``numeric`` holding numbers;
    every column when ``numeric`` is None); None when missing.

    Further columns are kept. A header without rows is a valid, empty table.
    """
    if not path.is_file():
        return None
    try:
        table = restore_csv_frame(pd.read_csv(path, sep=sep))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: unreadable table: {reason}") from None
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise DataError(f"{path}: missing column(s) {', '.join(absent)}; expected at least {', '.join(columns)} "
                        f"(found {', '.join(map(str, table.columns))})")
    for column in table.columns if numeric is None else numeric:
        if len(table) and not pd.api.types.is_numeric_dtype(table[column]):
            raise DataError(f"{path}: column {column} must hold numbers, found e.g. {table[column].iloc[0]!r}")
    return table
