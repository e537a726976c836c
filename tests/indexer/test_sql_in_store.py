"""All of the indexer's SQL is in its store (clair_indexer/store.py).

The one other module with statements, rpmdb/sqlite.py, reads the RPM database inside an image's
layer, not the indexer's.
"""

from __future__ import annotations

from pathlib import Path

import clair_indexer
from tests.matcher.test_sql_in_store import sql_strings

PACKAGE = Path(clair_indexer.__file__).parent
STORE = PACKAGE / "store.py"
IMAGE_DATABASES = {PACKAGE / "rpmdb" / "sqlite.py"}


def test_the_store_and_image_databases_have_statements() -> None:
    assert sql_strings(STORE)
    assert all(sql_strings(path) for path in IMAGE_DATABASES)


def test_no_sql_outside_the_store() -> None:
    outside = [p for p in sorted(PACKAGE.rglob("*.py")) if p != STORE and p not in IMAGE_DATABASES]
    assert len(outside) > 10
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {' '.join(text.split())[:80]}"
        for path in outside
        for line, text in sql_strings(path)
    ]
    assert found == [], "SQL outside clair_indexer/store.py:\n" + "\n".join(found)
