from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.registry",
    "tests.fixtures.registry_auth",
    "tests.fixtures.feeds",
    "tests.fixtures.broker",
    "tests.fixtures.rpmbuild",
    "tests.fixtures.faulty",
]


def data_root() -> Path:
    """Real public test data, shared between projects; never copied into this repository."""
    return Path(os.environ.get("CLAIR_TEST_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not root.is_dir():
        pytest.fail(f"test data not found at {root}; set CLAIR_TEST_DATA")
    return root
