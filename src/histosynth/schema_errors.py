"""pandera's validation errors as one readable line: which check failed for which rows and values."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from pandera.errors import SchemaError, SchemaErrors

SHOWN_CHECKS = 6
_FRAME_CHECKS = {"column_in_dataframe": "missing column(s)", "column_in_schema": "unknown column(s)"}
SHOWN_CHARS = 60


def _shown(value: Any) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def _row(index: Any) -> str:
    return f"row {int(index) + 1}" if isinstance(index, (int, float)) and index == index else f"row {index}"


def _columns_named(check: str, columns: pd.Series) -> list[str]:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", check))
    return [c for c in dict.fromkeys(columns.dropna()) if c in words]


def describe(err: SchemaErrors | SchemaError) -> str:
    """``check: fails for N row(s), e.g. row R: column 'value'`` per failed check, joined by '; '."""
    cases = getattr(err, "failure_cases", None)
    if not isinstance(cases, pd.DataFrame) or cases.empty or "check" not in cases:
        lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
        return lines[0] if lines else type(err).__name__
    parts = []
    for check, group in cases.groupby("check", sort=False):
        indexed = group[group["index"].notna()]
        values = ", ".join(dict.fromkeys(str(v) for v in group["failure_case"]))
        if check in _FRAME_CHECKS:
            parts.insert(0, f"{_FRAME_CHECKS[check]}: {values}")
            continue
        if indexed.empty:
            column = group["column"].dropna()
            if str(check).startswith("dtype(") and not column.empty:
                parts.insert(0, f"column {column.iloc[0]} has type {values}, expected {str(check)[6:-1]}")
            elif values in ("False", "True"):
                parts.append(str(check))
            else:
                where = f"column {column.iloc[0]}: " if not column.empty else ""
                parts.append(f"{where}{check}: {_shown(values)}")
            continue
        rows = list(dict.fromkeys(indexed["index"]))
        first = indexed[indexed["index"] == rows[0]]
        if (group["schema_context"] == "Column").all():
            detail = f"{first['column'].iloc[0]} {_shown(first['failure_case'].iloc[0])}"
        else:  # a check across columns: show the columns its text names
            named = _columns_named(str(check), first["column"]) or list(first["column"].dropna())[:3]
            detail = ", ".join(f"{column} {_shown(first.loc[first['column'] == column, 'failure_case'].iloc[0])}"
                               for column in named)
        column = group["column"].iloc[0] if (group["schema_context"] == "Column").all() else None
        what = f"column {column}: {check}" if column is not None else str(check)
        parts.append(f"{what}: fails for {len(rows)} row(s), e.g. {_row(rows[0])}: {detail}")
    shown = parts[:SHOWN_CHECKS] + ([f"and {len(parts) - SHOWN_CHECKS} more"] if len(parts) > SHOWN_CHECKS else [])
    return "; ".join(" ".join(part.split()) for part in shown)
