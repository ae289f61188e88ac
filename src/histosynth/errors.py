"""Errors a user can act on.

Anything raised as a :class:`HistosynthError` is printed as one readable line by the CLI and
the stage scripts (no traceback): say what is wrong, where, and how to fix it.
"""


class HistosynthError(Exception):
    """An error caused by the user's input or environment, not by a bug."""


class ConfigError(HistosynthError):
    """params.yaml (or a CLI option) holds a value that is not allowed."""


class DataError(HistosynthError):
    """Input data is missing, unreadable or inconsistent."""
