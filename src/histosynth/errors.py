"""Errors a user can act on.

Anything raised as a :class:`HistosynthError` is printed as one readable line by the CLI and
the stage scripts (no traceback): say what is wrong, where, and how to fix it. Each kind below
exits with its own status (the table is :data:`histosynth.entry.EXIT_CODES`).
"""


class HistosynthError(Exception):
    """An error caused by the user's input or environment, not by a bug."""


class ConfigError(HistosynthError):
    """params.yaml (or a CLI option) holds a value that is not allowed."""


class DataError(HistosynthError):
    """Input data is missing, unreadable or inconsistent."""


class GateFailed(HistosynthError):
    """A quality gate judged an output unfit (e.g. the QA gates with qa.enforce: true)."""


class TrainingDiverged(HistosynthError):
    """Training stopped on a non-finite loss; the last good checkpoint is kept."""
