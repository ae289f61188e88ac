"""Changing one value in params.yaml in place, touching nothing else in the file.

Used by ``histosynth publish`` to stamp ``package.version``. The composer of DVC's YAML reader
(histosynth.config.loader) finds where the value sits; only that scalar's characters are
replaced (a block scalar, ``>`` or ``|``, with all its lines), so comments, nulls and line breaks
stay as the user wrote them. The result is validated like any params.yaml before it replaces the
file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from histosynth.config.loader import PARAMS_FILE, compose_params, params_from_mapping, parse_params_text
from histosynth.errors import ConfigError
from histosynth.fsutil import atomic_write_text


def set_param(key: str, value: str | int | float | bool, path: Path | str = PARAMS_FILE) -> bool:
    """Set the dotted ``key`` (``section.name``) to ``value``; False when it already had it."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    section, _, leaf = key.partition(".")
    if not leaf or "." in leaf:
        raise ConfigError(f"{key}: only section.name keys can be stamped")
    document = parse_params_text(text, str(path)) or {}
    try:
        nodes = compose_params(text)  # the same document as a node graph, with each node's place in the text
    except YAMLError as err:  # parse_params_text read it: not reached
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    literal = json.dumps(value)  # JSON scalars are YAML flow scalars: "1.0.0", 3, 0.5, true
    node = document.get(section) if isinstance(document, dict) else None
    if isinstance(node, dict) and leaf in node:
        if node[leaf] == value:
            return False
        scalar = _entry(_entry(nodes, section)[1], leaf)[1]
        if not isinstance(scalar, ScalarNode):
            raise ConfigError(f"{path}:{scalar.start_mark.line + 1}: cannot stamp {key}: its value is not a scalar")
        start, end = scalar.start_mark.index, scalar.end_mark.index
        block = scalar.style in ("|", ">")  # a block scalar ends at the start of the line after it
        text = text[:start] + literal + ("\n" if block else "") + text[end:]
    elif isinstance(node, dict):
        mark = _entry(nodes, section)[0].start_mark
        lines = text.splitlines(keepends=True)
        lines.insert(mark.line + 1, f"{' ' * (mark.column + 2)}{leaf}: {literal}\n")
        text = "".join(lines)
    elif node is None and section not in document:
        text = text + ("" if not text or text.endswith("\n") else "\n") + f"\n{section}:\n  {leaf}: {literal}\n"
    else:
        raise ConfigError(f"{path}: cannot stamp {key}: {section} is not a mapping of keys")
    params_from_mapping(parse_params_text(text, f"{path} with {key} = {value!r}"),
                        source=f"{path} with {key} = {value!r}")
    atomic_write_text(path, text)
    return True


def _entry(mapping: Node, key: str) -> tuple[Node, Node]:
    """The (key, value) nodes of ``key`` in ``mapping``."""
    if not isinstance(mapping, MappingNode):
        raise ConfigError(f"cannot stamp {key}: not inside a mapping")
    return [(k, v) for k, v in mapping.value if isinstance(k, ScalarNode) and k.value == key][-1]
