"""Markdown that shows text from input (class names, params, paths) as text, never as markup.

The dataset card is read on GitHub, in DVC Studio and in Markdown viewers that let HTML through,
so nothing from input may open a tag, a link, an image, emphasis, a code span or a table cell:
``<``, ``>`` and ``&`` become HTML entities, Markdown's inline punctuation gets a backslash, line
breaks become spaces, and a paragraph cannot start a heading, list or quote.
"""

from __future__ import annotations

import re

class Markup(str):
    """Markdown written here, not taken from input: :func:`histosynth.package.card.cell` keeps it as is."""


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Inline markup: emphasis, code spans, links and images, table cells, strikethrough, escapes,
# headings (also a heading's closing #s). An underscore between two letters or digits cannot
# start or end emphasis (CommonMark), so `g_lr` stays as it is.
_INLINE = re.compile(r"[\\`*\[\]|~#]|(?<![^\W_])_|_(?![^\W_])")
# What else opens a block at the start of a paragraph: a list item, a setext underline.
_BLOCK_START = re.compile(r"^([+=-]|\d+(?=[.)]))")


def text(value: object) -> str:
    """``value`` as Markdown inline text that renders exactly as the characters given (one line, not
    at the start of a line: see :func:`paragraphs`)."""
    flat = " ".join(str(value).split())
    escaped = _INLINE.sub(lambda m: "\\" + m.group(0), flat)
    return "".join(_ENTITIES.get(ch, ch) for ch in escaped)


def _line_start(escaped: str) -> str:
    return _BLOCK_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0), escaped)


def paragraphs(value: str) -> str:
    """Multi-paragraph text (blank lines separate paragraphs), each paragraph as :func:`text` that
    may start a line without opening a list or heading."""
    return "\n\n".join(_line_start(text(part)) for part in re.split(r"\n\s*\n", value.strip()) if part.strip())


def code(value: object) -> str:
    """``value`` as an inline code span (outside tables), whatever backticks it holds."""
    flat = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def code_block(value: str, info: str = "") -> str:
    """``value`` verbatim in a fenced code block that no line of it can close."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    return f"{fence}{info}\n{value.rstrip()}\n{fence}"
