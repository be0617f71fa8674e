"""No module of the product imports itself through others (src, services, protocols).

The graph is built from the source (every ``import`` and ``from … import``, those under
``if TYPE_CHECKING:`` and inside functions too: an import hidden there still ties the two
modules together), so a cycle fails here whether or not it would fail at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "src/filmstrip": "filmstrip",
    "services": "filmstrip.services",
    "protocols": "filmstrip.protocols",
}


def modules_under(root: Path, packages: dict[str, str]) -> dict[str, Path]:
    """Module name → file, for each folder (relative to ``root``) → its package name."""
    found = {}
    for folder, package in packages.items():
        for path in (root / folder).rglob("*.py"):
            parts = [package, *path.relative_to(root / folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each of ``modules`` → those of them it imports."""

    def ours(name: str) -> str | None:
        # ``from a.b import c``: the module a.b.c if there is one, else a.b (its attribute).
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names += [f"{base}.{alias.name}" for alias in node.names]
        graph[module] = {t for t in map(ours, names) if t is not None and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path back to its start) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, set(group)) for group in groups]


def _path_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    path, seen = [start], {start}
    while True:
        nxt = min(n for n in graph[path[-1]] if n in group)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def test_no_import_cycles() -> None:
    found = cycles(import_graph(modules_under(ROOT, PACKAGES)))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_hidden_imports_make_cycles_too(tmp_path: Path) -> None:
    """An import under TYPE_CHECKING, one inside a function, relative ones and a package's
    __init__ all count."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.sub import c\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import X\n"
    )
    (pkg / "b.py").write_text("import os\n\ndef f():\n    from . import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\n")
    graph = import_graph(modules_under(tmp_path, {"pkg": "pkg"}))
    assert graph == {
        "pkg": {"pkg.sub.c"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a"},
    }  # fmt: skip
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
