"""histosynth's import graph, read from the source with ast (nothing is imported).

An edge A -> B means that running A's code can import B: an import at the top of A or inside one of
its functions (a lazy import still runs), a parent package of B (importing ``a.b`` runs
``a/__init__.py``), or a string that names a histosynth module (``importlib.import_module`` by name).
Not followed: imports under ``if TYPE_CHECKING:`` (never run), and those inside a package's PEP 562
``__getattr__`` (lazy attributes such as ``histosynth.load_package``): they run only for whoever
imports such an attribute by name, so they are that importer's edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ROOT = "histosynth"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = Module(name, path, is_package)
    return found


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(nodes: Iterable[ast.AST], skip_functions: bool) -> Iterable[ast.AST]:
    """Every node under ``nodes``, without TYPE_CHECKING blocks and, with ``skip_functions``, any function."""
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _walk(node.orelse, skip_functions)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and skip_functions:
            continue
        yield node
        yield from _walk(ast.iter_child_nodes(node), skip_functions)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _top_level_names(module: Module) -> set[str]:
    names = set()
    for node in _tree(module.path).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def _lazy_attribute_imports(module: Module) -> set[str]:
    """What the module's PEP 562 ``__getattr__`` imports."""
    for node in _tree(module.path).body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return set(_imports_in(node.body, module, skip_functions=False))
    return set()


def _resolve(node: ast.ImportFrom, module: Module) -> str:
    if not node.level:
        return node.module or ""
    package = module.name if module.is_package else module.name.rsplit(".", 1)[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports_in(nodes: Iterable[ast.AST], module: Module | None, skip_functions: bool) -> Iterable[str]:
    known = modules()
    for node in _walk(nodes, skip_functions):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == ROOT)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, module) if module else node.module or ""
            if source.split(".")[0] != ROOT:
                continue
            yield source
            for alias in node.names:
                child = f"{source}.{alias.name}"
                if child in known:
                    yield child
                elif source in known and alias.name not in _top_level_names(known[source]):
                    yield from _lazy_attribute_imports(known[source])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known \
                and node.value.startswith(f"{ROOT}."):
            yield node.value  # a module imported by name


def direct_imports(name: str, skip_functions: bool = False) -> set[str]:
    """The histosynth modules that module ``name`` imports (with their parent packages)."""
    module = modules()[name]
    body = [node for node in _tree(module.path).body
            if not (isinstance(node, ast.FunctionDef) and node.name == "__getattr__")]
    found = set()
    for imported in _imports_in(body, module, skip_functions):
        found |= {imported, *_parents(imported)}
    return found & set(modules()) - {name}


def file_imports(path: Path, skip_functions: bool = False) -> set[str]:
    """The histosynth modules a file outside the package (a stage script) imports."""
    found = set()
    for imported in _imports_in(_tree(path).body, None, skip_functions):
        found |= {imported, *_parents(imported)}
    return found & set(modules())


def function_imports(name: str, function: str) -> set[str]:
    """What the function ``function`` of module ``name`` imports when it runs."""
    module = modules()[name]
    body = next(node for node in _tree(module.path).body
                if isinstance(node, ast.FunctionDef) and node.name == function)
    found = set()
    for imported in _imports_in(body.body, module, skip_functions=False):
        found |= {imported, *_parents(imported)}
    return found & set(modules())


def closure(start: Iterable[str], shallow: frozenset[str] = frozenset()) -> set[str]:
    """Every module reachable from ``start``; the modules in ``shallow`` count only their imports at
    module level (their functions import for somebody else)."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(direct_imports(name, skip_functions=name in shallow) - seen)
    return seen


def files_of(names: Iterable[str]) -> set[Path]:
    """The source files of ``names``, with the data files their packages ship (templates...)."""
    files = set()
    for name in names:
        module = modules()[name]
        files.add(module.path)
        if module.is_package:
            files |= {path for path in module.path.parent.rglob("*") if path.is_file() and path.suffix not in
                      (".py", ".pyc") and "__pycache__" not in path.parts and _package_of(path) == module.path.parent}
    return files


def _package_of(path: Path) -> Path:
    """The innermost Python package folder that holds ``path``."""
    folder = path.parent
    while not (folder / "__init__.py").is_file():
        folder = folder.parent
    return folder


def group(name: str) -> str:
    """The part of histosynth a module belongs to: ``histosynth.qa.gates`` -> ``histosynth.qa``,
    ``histosynth.fsutil`` -> itself; the package's own ``__init__`` -> ``histosynth``."""
    return ".".join(name.split(".")[:2])


def group_edges() -> dict[tuple[str, str], list[str]]:
    """Edges between the parts of histosynth (top-level modules and sub-packages), each with the
    module imports behind it."""
    edges: dict[tuple[str, str], list[str]] = {}
    for name in modules():
        for imported in direct_imports(name):
            if group(name) != group(imported):
                edges.setdefault((group(name), group(imported)), []).append(f"{name} -> {imported}")
    return edges


def cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
