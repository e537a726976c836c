"""All of the matcher's SQL is in its store: no other module of clair_matcher holds a statement.

Every string constant of every module outside `clair_matcher/store/` (f-string parts included;
docstrings, which are prose, excepted) is searched for the start of a statement.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import clair_matcher

PACKAGE = Path(clair_matcher.__file__).parent
STORE = PACKAGE / "store"
STATEMENT = re.compile(
    r"\b(SELECT\s|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|COPY\s|TRUNCATE\s"
    r"|VACUUM\b|ANALYZE\s|CREATE\s+(TEMP\s+|UNIQUE\s+)?(TABLE|INDEX)\b|ALTER\s+TABLE\b"
    r"|DROP\s+TABLE\b|LISTEN\s|NOTIFY\s|ON\s+CONFLICT\b)"
)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of the module, its classes and functions."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.add(id(body[0].value))
    return found


def sql_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the string constants of `path` that read as SQL."""
    tree = ast.parse(path.read_text(), str(path))
    prose = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in prose
        and STATEMENT.search(node.value)
    ]


def test_the_pattern_finds_the_statements_of_the_store() -> None:
    # The check below means something only if it recognizes the store's own statements.
    found = {p.name: sql_strings(p) for p in STORE.glob("*.py")}
    for module in ("_ingest.py", "_gc.py", "_status.py", "_operations.py", "_matching.py"):
        assert found[module], f"no SQL recognized in store/{module}"


def test_no_sql_outside_the_store() -> None:
    outside = [p for p in sorted(PACKAGE.rglob("*.py")) if STORE not in p.parents]
    assert len(outside) > 10
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {' '.join(text.split())[:80]}"
        for path in outside
        for line, text in sql_strings(path)
    ]
    assert found == [], "SQL outside clair_matcher/store:\n" + "\n".join(found)
