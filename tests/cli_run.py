"""Running `histosynth` in-process and reading its output the way a script would."""

from __future__ import annotations

from typer.testing import CliRunner

from histosynth.cli import app


def invoke(*args: str) -> tuple[int, str]:
    """Exit status and output (stdout + stderr) of ``histosynth *args``; a traceback fails the test."""
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def one_error(output: str) -> str:
    """The one line starting with ``error:`` (asserting there is exactly one, and no traceback)."""
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]
