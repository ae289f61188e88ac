"""Changing one value in params.yaml in place, touching nothing else in the file.

Used by ``histosynth publish`` to stamp ``package.version``. PyYAML's composer finds where the
value sits (line and column); only that scalar's characters are replaced, so comments, nulls
and line breaks stay as the user wrote them. The result is validated like any params.yaml before
it replaces the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from histosynth.config.loader import PARAMS_FILE, params_from_mapping
from histosynth.errors import ConfigError
from histosynth.fsutil import atomic_write_text

# A scalar as it can appear after "key: " in block style: quoted, or plain up to a comment.
SCALAR = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^\s#,}\]]+')


def set_param(key: str, value: str | int | float | bool, path: Path | str = PARAMS_FILE) -> bool:
    """Set the dotted ``key`` (``section.name``) to ``value``; False when it already had it."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    section, _, leaf = key.partition(".")
    if not leaf or "." in leaf:
        raise ConfigError(f"{key}: only section.name keys can be stamped")
    document = yaml.safe_load(text) or {}
    nodes = yaml.compose(text)  # the same document as a node graph, with each node's line and column
    lines = text.splitlines(keepends=True)
    literal = json.dumps(value) if isinstance(value, str) else yaml.safe_dump(value).splitlines()[0]
    node = document.get(section)
    if node is not None and leaf in node:
        if node[leaf] == value:
            return False
        mark = _entry(_entry(nodes, section)[1], leaf)[1].start_mark
        line, column = mark.line, mark.column
        match = SCALAR.match(lines[line], column)
        if match is None:
            raise ConfigError(f"{path}:{line + 1}: cannot stamp {key}: its value is not a plain scalar")
        lines[line] = lines[line][:match.start()] + literal + lines[line][match.end():]
    elif node is not None:
        mark = _entry(nodes, section)[0].start_mark
        line, column = mark.line, mark.column
        indent = " " * (column + 2)
        lines.insert(line + 1, f"{indent}{leaf}: {literal}\n")
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += [f"\n{section}:\n", f"  {leaf}: {literal}\n"]
    new_text = "".join(lines)
    params_from_mapping(yaml.safe_load(new_text), source=f"{path} with {key} = {value!r}")
    atomic_write_text(path, new_text)
    return True


def _entry(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node]:
    """The (key, value) nodes of ``key`` in ``mapping``; the last one, as loading keeps the last duplicate."""
    return [(k, v) for k, v in mapping.value if isinstance(k, yaml.ScalarNode) and k.value == key][-1]
