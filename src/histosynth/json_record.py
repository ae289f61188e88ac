"""Reading the small JSON records beside model weights (``record.json``) as untrusted input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from histosynth.errors import DataError
from histosynth.plain_files import open_plain_file

MAX_BYTES = 16 << 20  # a record is a few KB; this bounds a hostile one


def read_json_record(path: Path, fix: str) -> dict[str, Any]:
    """The JSON object in the plain file ``path``; anything else is a DataError ending in ``fix``."""
    try:
        with open_plain_file(path, follow_symlinks=True) as file:
            data = file.read(MAX_BYTES + 1)
    except DataError as err:
        raise DataError(f"{err}; {fix}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}); {fix}") from None
    if len(data) > MAX_BYTES:
        raise DataError(f"{path}: larger than {MAX_BYTES >> 20} MiB, which no record is; {fix}")
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{path}: not valid JSON ({' '.join(str(err).split())}); {fix}") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: holds a JSON {type(record).__name__}, not an object; {fix}")
    return record


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


CHECKS = {
    "text": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "count": (_is_count, "a whole number of 1 or more"),
    "names": (_is_names, "a non-empty list of strings"),
    "object": (lambda value: isinstance(value, dict), "a JSON object"),
}


def require_fields(record: dict[str, Any], fields: dict[str, str], where: Path | str, fix: str) -> None:
    """Each ``fields`` key must be in ``record`` and pass its check (a key of CHECKS), else DataError."""
    problems = []
    for key, kind in fields.items():
        check, wanted = CHECKS[kind]
        if key not in record:
            problems.append(f"{key} missing")
        elif not check(record[key]):
            shown = repr(record[key])
            problems.append(f"{key} = {shown if len(shown) <= 40 else shown[:37] + '...'} is not {wanted}")
    if problems:
        raise DataError(f"{where}: {'; '.join(problems)}; {fix}")
