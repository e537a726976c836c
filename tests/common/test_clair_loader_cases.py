"""Clair's own config-loader cases (`clair/cmd/testdata`, in ../shared/data/clair-configs/cmd),
checked as Clair's `TestLoadConfig` checks them: each config with its drop-ins decodes to the
same config as Clair's `want.json`, and each file under `Error/` is refused. The merge patches
are the json-merge-patch library's, the JSON patches ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clair_common.config import ConfigError, load_config, merged_document, validate_document
from tests.conftest import data_root

CASES = data_root() / "clair-configs" / "cmd" / "testdata"


def _wanted() -> list[Path]:
    return sorted(path.parent for path in CASES.glob("*/want.json"))


def _refused() -> list[Path]:
    return sorted(path for path in (CASES / "Error").iterdir() if path.is_file())


@pytest.mark.parametrize("case", _wanted(), ids=lambda path: path.name)
def test_config_with_dropins_loads_as_clairs_result(case: Path) -> None:
    (config,) = [p for p in case.iterdir() if p.name in ("config.yaml", "config.json")]
    want = json.loads((case / "want.json").read_text())
    assert load_config(config, environ={}) == validate_document(want, "want.json")
    # The merged document itself differs only by the empty objects Go's encoder leaves out.
    merged = merged_document(config)
    assert {k: v for k, v in merged.items() if v != {}} == want


@pytest.mark.parametrize("path", _refused(), ids=lambda path: path.name)
def test_clairs_error_cases_are_refused(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert all(line.startswith(str(path)) for line in info.value.problems), info.value.problems


def test_every_case_is_here() -> None:
    assert [p.name for p in _wanted()] == ["ComplexJSON", "ComplexYAML", "SimpleJSON", "SimpleYAML"]
    assert len(_refused()) == 7
