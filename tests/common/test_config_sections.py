"""Each service's own section: the layer cache keys, and the views services are handed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from clair_common.config import IndexerView, MatcherView, NotifierView, default_config, service_view


def test_layer_cache_defaults_are_the_temp_directory_and_ten_gib() -> None:
    indexer = default_config({}).indexer
    assert indexer.layer_cache_path == Path(tempfile.gettempdir()) / "clair-layers"
    assert indexer.layer_cache_bytes == 10 << 30


def test_layer_cache_from_the_section_or_the_older_variable(tmp_path: Path) -> None:
    env = {"CLAIR_LAYER_CACHE": str(tmp_path / "old"), "CLAIR_INDEXER__LAYER_CACHE_BYTES": "42"}
    indexer = default_config(env).indexer
    assert indexer.layer_cache_path == tmp_path / "old"
    assert indexer.layer_cache_bytes == 42
    env["CLAIR_INDEXER__LAYER_CACHE_DIR"] = str(tmp_path / "new")
    assert default_config(env).indexer.layer_cache_path == tmp_path / "new"


def test_each_service_sees_its_sections_and_the_shared_keys() -> None:
    cfg = default_config({"CLAIR_AUTH__PSK__KEY": "c2VjcmV0"})
    indexer = service_view(cfg, "indexer")
    matcher = service_view(cfg, "matcher")
    notifier = service_view(cfg, "notifier")
    assert isinstance(indexer, IndexerView)
    assert isinstance(matcher, MatcherView)
    assert isinstance(notifier, NotifierView)
    assert set(IndexerView.__dataclass_fields__) == {"shared", "indexer"}
    assert set(NotifierView.__dataclass_fields__) == {"shared", "notifier"}
    assert set(MatcherView.__dataclass_fields__) == {"shared", "matcher", "matchers", "updaters"}
    for view in (indexer, matcher, notifier):
        assert view.shared.auth.psk is not None
        assert view.shared.auth.psk.key_bytes == b"secret"
