"""docs/api.md's error-code table lists every code the api and the worker can give a client,
each with the HTTP status or failure category the code gives it, and no other code.

The codes live where they are raised; this reads them from the source (``ApiError``,
``error_response`` and every error built with ``code=``), as the settings table is read
from the settings Structs.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from filmstrip.http_errors import HTTP_CODES
from filmstrip.photos.failures import UNKNOWN_CODE

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
SOURCES = (ROOT / "src" / "filmstrip", ROOT / "services")
# The client library's own errors are raised on the client, never sent by the server.
NOT_SERVER = ROOT / "src" / "filmstrip" / "client"

# Raised only at start-up or by the CLI (a process that cannot start, a catalog copy),
# or turned into an answer of another code: never what a client reads.
NOT_SEEN = {
    "bad_blob_url": "a blob URL setting, refused at start",
    "bad_catalog_url": "a catalog URL setting, refused at start",
    "cannot_start": "a process that cannot start",
    "catalog_copy_cycle": "filmstrip catalog copy",
    "catalog_missing": "filmstrip migrate / start-up",
    "catalog_too_new": "start-up, against a newer catalog",
    "duplicate": "answered as 200 {duplicate: true}",
    "parts_lost": "the S3 store's, answered by tus as upload_parts_lost (or upload_locked)",
}
# Where the table says the code comes from (a category for errors built as values).
CATEGORY_OF_CLASS = {
    "DataError": "DATA",
    "TemporaryError": "TEMPORARY",
    "ResourceError": "RESOURCE",
    "LogicError": "LOGIC",
    "FilmstripError": "LOGIC",
}


def doc_rows() -> dict[str, str]:
    """Each code of the table → its *where* cell."""
    text = DOC.read_text()
    section = text[text.index("\n## Error codes\n") :]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", section, flags=re.M))


class _Codes(ast.NodeVisitor):
    """Codes of one module: code → the statuses and categories it is raised with."""

    def __init__(self, bases: dict[str, str], found: dict[str, set[str]]) -> None:
        self.bases, self.found = bases, found
        self.constants: dict[str, str] = {}
        self.classes: list[str] = []

    def visit_Module(self, node: ast.Module) -> None:
        for statement in node.body:
            if (
                isinstance(statement, ast.Assign)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        self.constants[target.id] = statement.value.value
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def _literal(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        return None

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name in ("ApiError", "error_response") and len(node.args) >= 2:
            code = self._literal(node.args[1])
            status = node.args[0]
            if code is not None:
                where = str(status.value) if isinstance(status, ast.Constant) else ""
                self.found[code].add(where)
        for keyword in node.keywords:
            code = self._literal(keyword.value) if keyword.arg == "code" else None
            if code is None:
                continue
            category = next(
                (ast.unparse(k.value).rsplit(".", 1)[-1] for k in node.keywords
                 if k.arg == "category"),
                None,
            )  # fmt: skip
            if category is None:
                raised = self.classes[-1] if name == "__init__" and self.classes else name
                category = self._category(raised)
            if category is not None and name not in CATEGORY_OF_CLASS:
                # An exception class of its own: the api may catch it and answer a status.
                category = f"{category}?"
            self.found[code].add(category or "")
        self.generic_visit(node)

    def _category(self, name: str) -> str | None:
        seen: set[str] = set()
        while name not in CATEGORY_OF_CLASS:
            if name in seen or name not in self.bases:
                return None
            seen.add(name)
            name = self.bases[name]
        return CATEGORY_OF_CLASS[name]


def code_sources() -> dict[str, set[str]]:
    """Every code the server's source gives → the statuses and categories it comes with
    ('' where the source does not say)."""
    files = [
        path
        for base in SOURCES
        for path in sorted(base.rglob("*.py"))
        if NOT_SERVER not in path.parents
    ]
    trees = [ast.parse(path.read_text()) for path in files]
    bases = {
        node.name: node.bases[0].id
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.bases and isinstance(node.bases[0], ast.Name)
    }
    found: dict[str, set[str]] = defaultdict(set)
    for tree in trees:
        _Codes(bases, found).visit(tree)
    # The framework's own errors, and the code of a photo failed before codes were kept.
    for status, code in HTTP_CODES.items():
        found[code].add(str(status))
    found["http_error"].add("")
    found[UNKNOWN_CODE].add("TEMPORARY")
    return found


def test_the_table_lists_every_code_and_no_other() -> None:
    rows, found = doc_rows(), code_sources()
    missing = sorted(found.keys() - rows.keys() - NOT_SEEN.keys())
    assert not missing, f"docs/api.md's error-code table lacks: {missing}"
    extra = sorted(rows.keys() - found.keys())
    assert not extra, f"docs/api.md's error-code table lists codes the server never gives: {extra}"
    assert not rows.keys() & NOT_SEEN.keys()


def _answered(where: str) -> bool:
    """Whether a *where* cell names an HTTP status: an exception class of its own with
    that code is then one the api turns into that answer, whatever its category."""
    return re.search(r"`\d{3}`", where) is not None


def test_the_table_says_where_each_code_comes_from() -> None:
    rows, found = doc_rows(), code_sources()
    wrong = [
        f"{code}: the table says {rows[code]!r}, the code gives it with {where}"
        for code, wheres in sorted(found.items())
        if code in rows
        for where in sorted(wheres)
        if where
        and f"`{where.rstrip('?')}`" not in rows[code]
        and not (where.endswith("?") and _answered(rows[code]))
    ]
    assert not wrong, "\n".join(wrong)
