"""The import graph has no cycles, and lower layers never import higher ones.

Only imports executed when a module loads count (those inside functions or ``if TYPE_CHECKING:`` are
deliberate late bindings). ``from pkg import sub`` counts as an import of ``pkg.sub`` when ``sub`` is a
module. A cycle makes import order matter (``safeguard streams watch`` once died of one); the layers are
those of docs/architecture.md: storage and signals at the bottom, the engine above them, workers, the
API, the console and the CLI on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import safeguard

SRC = Path(safeguard.__file__).resolve().parent

#: top-level packages a module at the bottom of the stack must never import at load time
HIGHER = ("safeguard.api", "safeguard.web", "safeguard.cli", "safeguard.workers")
#: the bottom of the stack: storage, the signal and index plug-ins, media decoding, settings
LOWER = (
    "safeguard.store",
    "safeguard.signals",
    "safeguard.index",
    "safeguard.media",
    "safeguard.config",
    "safeguard.errors",
    "safeguard.metrics",
    "safeguard.ledger",
    "safeguard.content",
    "safeguard.resources",
    "safeguard.engine",
    "safeguard.detectors",
    "safeguard.actions",
    "safeguard.banks",
    "safeguard.policy",
)


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        if "migrations" in rel.parts:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _load_time_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    found.add(sub if sub in modules else module)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {o for o in (owner(m) for m in found if m.startswith("safeguard")) if o and o != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _load_time_imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _is_parent_package(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycles() -> None:
    graph = _graph()
    # a package's __init__ re-exporting its own submodules is not a cycle worth breaking: drop the
    # edges between a package and the modules inside it before looking
    pruned = {name: {d for d in deps if not _is_parent_package(name, d)} for name, deps in graph.items()}
    assert "safeguard.store.models" in pruned and pruned["safeguard.cli"], "the graph was not read"
    assert _cycles(pruned) == []


def _every_import(path: Path) -> set[str]:
    """Every absolute ``safeguard`` import in a file, late ones inside functions included."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in out if m.startswith("safeguard.")}


def test_lower_layers_never_import_higher_ones() -> None:
    """Not even late, inside a function: a late import hides a cycle rather than removing it."""
    bad = [
        f"{name} imports {dep}"
        for name, path in sorted(_modules().items())
        if name.startswith(LOWER)
        for dep in sorted(_every_import(path))
        if dep.startswith(HIGHER)
    ]
    assert bad == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
