"""The one place that reads params.yaml.

It is read as DVC reads it: with ruamel.yaml's safe loader, i.e. the YAML 1.2 core schema
(``seed: 010`` is 10, ``epochs: 1:00`` and ``yes`` are strings, ``true``/``false`` the only
booleans), and as strictly: an empty file, a duplicate key at any level, a file that is not UTF-8
and a missing section that the stage (or CLI command) reads are errors, never a silent fall-back
to the defaults in the code (which are not params.yaml's). Values are then validated strictly
(histosynth.config.base): a bool or a string is no number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from histosynth.config.schema import Params
from histosynth.errors import ConfigError

PARAMS_FILE = Path("params.yaml")
# A params file is a few KB; these bound what a hostile one can cost (memory, validation time).
MAX_BYTES = 1 << 20
MAX_VALUES = 100_000  # YAML nodes after expanding aliases (a "billion laughs" file has 10**9)
SHOWN_PROBLEMS = 20
SHOWN_VALUE_CHARS = 60
MERGE_TAG = "tag:yaml.org,2002:merge"


def _yaml_problem(err: YAMLError, source: str) -> str:
    """ruamel's error as one line: where (line), what, and in which construct."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or problem is None:
        return f"{source}: not valid YAML: {' '.join(str(err).split())}"
    context = getattr(err, "context", None)
    return (f"{source} line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {' '.join(problem.split())}"
            + (f" ({' '.join(context.split())})" if context else ""))


def _expanded_size(node: Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes under ``node`` with every alias expanded (memoised: aliases share node objects)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ConfigError("a value contains itself (a YAML alias inside its own anchor)")
    open_nodes.add(id(node))
    children: Iterable[Node] = ()
    if isinstance(node, MappingNode):
        children = (child for pair in node.value for child in pair)
    elif isinstance(node, SequenceNode):
        children = node.value
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_VALUES:
            raise ConfigError(f"more than {MAX_VALUES:,} values once YAML aliases are expanded; "
                              "a params file holds a few hundred")
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def _refuse_duplicate_keys(node: Node, constructor: SafeConstructor, seen: set[int]) -> None:
    """A key given twice in one mapping, at any level, is an error (as in DVC), in words a user reads."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            key = constructor.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise ConfigError(f"line {line}: the key {key!r} is given twice in one mapping (first at line "
                                  f"{first_line[key]}); DVC refuses that too: keep one")
            first_line[key] = line
        children: Iterable[Node] = (value for _, value in node.value)
    else:
        children = node.value if isinstance(node, SequenceNode) else ()
    for child in children:
        _refuse_duplicate_keys(child, constructor, seen)


def compose_params(text: str) -> Node | None:
    """The node graph of the YAML document in ``text`` (None when it holds none), as DVC's reader
    (ruamel.yaml, safe, YAML 1.2) parses it; each node knows where it sits in ``text``."""
    return YAML(typ="safe", pure=True).compose(text)


def parse_params_text(text: str, source: str) -> Any:
    """The YAML document in ``text`` (None when it holds none), read as DVC reads it (module docstring)."""
    yaml = YAML(typ="safe", pure=True)
    try:
        node = yaml.compose(text)
        if node is None:
            return None
        try:
            _expanded_size(node, {}, set())
            _refuse_duplicate_keys(node, yaml.constructor, set())
        except ConfigError as err:
            raise ConfigError(f"{source}{'' if str(err).startswith('line ') else ':'} {err}") from None
        return yaml.constructor.construct_document(node)
    except YAMLError as err:
        raise ConfigError(_yaml_problem(err, source)) from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a params file") from None


def read_params_file(path: Path) -> Any:
    """The parsed content of ``path``: a plain, UTF-8 YAML file with one non-empty document."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise ConfigError(f"{path}: params file {what} (run from the project root, or pass its path)")
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the params file ({err.strerror})") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES // 1024} KiB; a params file is a few KB of YAML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path} line {line}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                          "save the file as UTF-8") from None
    raw = parse_params_text(text, str(path))
    if raw is None:
        raise ConfigError(f"{path}: empty; a params file needs the sections of the project's params.yaml "
                          "(data, augment, gan, generate, qa, package, benchmark)")
    return raw


def load_params(path: Path | str = PARAMS_FILE, *, reader: str | None = None, sections: Iterable[str] = ()) -> Params:
    """Read and validate params.yaml; raise ConfigError with one line per bad value.

    ``sections``: the sections that ``reader`` (a stage or command, histosynth.pipeline) reads; they
    must be in the file, as DVC demands of the params a stage lists.
    """
    path = Path(path)
    raw = read_params_file(path)
    if isinstance(raw, dict):
        missing = [section for section in sections if section not in raw]
        if missing:
            names = ", ".join(f"'{name}:'" for name in missing)
            raise ConfigError(f"{path}: no {names} section; `{reader}` reads it, and DVC refuses such a file "
                              "too (the code's defaults are not params.yaml's): add it, e.g. copied from the "
                              "project's params.yaml")
    return params_from_mapping(raw, source=str(path))


def params_from_mapping(raw: Any, source: str = "params") -> Params:
    """Params from a mapping; a missing section or key takes the code's default (for tests and tools)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        problems = [describe_problem(source, e) for e in err.errors()]
        if len(problems) > SHOWN_PROBLEMS:
            problems = problems[:SHOWN_PROBLEMS] + [f"{source}: and {len(problems) - SHOWN_PROBLEMS} more"]
        raise ConfigError("\n".join(problems)) from None


def with_values(params: Params, values: Mapping[str, Any]) -> Params:
    """``params`` with the command-line ``values`` that were given (not None) at their dotted keys
    (``gan.epochs``, ``generate.diffusion.steps``), validated as params.yaml values are: a bad one is a
    ConfigError naming the key, the value and what is allowed."""
    given: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if value is not None:
            section, _, rest = key.partition(".")
            given.setdefault(section, {})[rest] = value
    updated = {}
    for section, keys in given.items():
        current = getattr(params, section)
        content = current.model_dump()
        for key, value in keys.items():
            *parents, last = key.split(".")
            target = content
            for parent in parents:
                target = target[parent]
            target[last] = value
        try:
            updated[section] = type(current).model_validate(content)
        except ValidationError as err:
            raise ConfigError("\n".join(describe_problem("command line", {**e, "loc": (section, *e["loc"])})
                                         for e in err.errors())) from None
    return params.model_copy(update=updated) if updated else params


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS - 3] + "..."


def describe_problem(source: str, error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = " ".join(error["msg"].removeprefix("Value error, ").split())
    if error["type"] == "extra_forbidden":
        return f"{source}: {key}: unknown key"
    value = error.get("input")
    if isinstance(value, dict):  # a section-level problem (e.g. unknown keys): show no dump
        return f"{source}: {key}: {message}"
    return f"{source}: {key} = {_shown(value)}: {message}"
