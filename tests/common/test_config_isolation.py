"""A service cannot read another service's config section, checked mechanically.

Statically: mypy --strict over code written as a service would write it (`ctx` typed as the
starter's `ServiceContext[...View]`) refuses every reach into another service's section and
accepts the service's own. At run time: the views `start_services` hands the starters hold their
own sections and the shared keys only, and nothing can be attached to them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

from clair_common import server
from clair_common.config import validate_document
from clair_common.runtime import ServiceContext

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"indexer", "matcher", "matchers", "updaters", "notifier"}
OWN = {
    "indexer": {"indexer"},
    "matcher": {"matcher", "matchers", "updaters"},
    "notifier": {"notifier"},
}
VIEW = {"indexer": "IndexerView", "matcher": "MatcherView", "notifier": "NotifierView"}


def snippet() -> tuple[str, dict[int, tuple[str, str]]]:
    """Service code reading every section; the lines that read another service's section."""
    lines = [
        "from typing import Any",
        "from clair_common.config import IndexerView, MatcherView, NotifierView",
        "from clair_common.runtime import ServiceContext",
    ]
    foreign: dict[int, tuple[str, str]] = {}
    for service, view in VIEW.items():
        lines.append(f"async def {service}_start(ctx: ServiceContext[{view}]) -> list[Any]:")
        lines.append("    seen: list[Any] = [ctx.config.shared.auth]")
        for section in sorted(SECTIONS):
            lines.append(f"    seen.append(ctx.config.{section})")
            if section not in OWN[service]:
                foreign[len(lines)] = (view, section)
        lines.append("    return seen")
    return "\n".join(lines) + "\n", foreign


def test_mypy_refuses_reading_another_services_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, foreign = snippet()
    # A module name of its own per run: mypy's (sqlite) cache replayed a module's errors under
    # the path it was first checked at, so every later run of one fixed name failed.
    path = tmp_path / f"service_code_{os.getpid()}_{time.monotonic_ns()}.py"
    path.write_text(text)
    monkeypatch.chdir(ROOT)  # the project's mypy settings (strict, mypy_path) and cache
    out, err, status = mypy_api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary", str(path)]
    )
    errors = {
        int(match.group(1)): match.group(2)
        for match in re.finditer(rf"^{re.escape(str(path))}:(\d+): error: (.*)$", out, re.M)
    }
    assert status == 1, out + err
    assert sorted(errors) == sorted(foreign), out
    for line, (view, section) in foreign.items():
        assert f'"{view}" has no attribute "{section}"' in errors[line]


class _Started:
    def __init__(self, name: str) -> None:
        self.name, self.operations, self.middleware, self.api = name, (), (), object()

    async def close(self) -> None:
        return None


async def test_starters_are_handed_only_their_own_sections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed: dict[str, ServiceContext[Any]] = {}

    def load_starter(name: str) -> Any:
        async def start(ctx: ServiceContext[Any]) -> _Started:
            handed[name] = ctx
            return _Started(name)

        return start

    monkeypatch.setattr(server, "load_starter", load_starter)
    config = validate_document({"notifier": {"webhook": {"target": "http://hook/"}}}, "c.yaml")
    started = await server.start_services("combo", config, {}, {})
    assert [s.name for s in started] == ["indexer", "matcher", "notifier"]
    for name, ctx in handed.items():
        view = ctx.config
        assert type(view).__name__ == VIEW[name]
        assert {f.name for f in dataclasses.fields(view)} == OWN[name] | {"shared"}
        for section in SECTIONS - OWN[name]:
            assert not hasattr(view, section), f"{name} can read {section}"
            assert not hasattr(view.shared, section), f"{name} can read {section} via shared"
            with pytest.raises((AttributeError, TypeError)):
                setattr(view, section, getattr(config, section))
