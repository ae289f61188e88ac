"""Rendering the report page from the section views with the Jinja2 template shipped in the package.

Images go into the page as base64 ``data:`` URIs and the CSS is inline, so the one HTML file
is the whole report: it opens offline, from an e-mail or from `dvc get`, with nothing beside it.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from histosynth.report.inputs import Missing


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def number(value: float | int | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits; "n/a" for a figure that was not computed."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("histosynth.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["data_uri"] = data_uri
    env.filters["number"] = number
    env.tests["missing"] = lambda value: isinstance(value, Missing)
    return env


def render_page(**context: Any) -> str:
    return _environment().get_template("report.html.j2").render(**context)
