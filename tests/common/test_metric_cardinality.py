"""Label values a client chooses (HTTP method, path) must not mint Prometheus series: junk
methods and junk paths, with or without a PSK, add at most a fixed handful of series."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.middleware import Middleware

from clair_common.http.app import build_api_app
from clair_common.http.limit import ConcurrencyLimitMiddleware
from clair_common.http.observe import method_label
from tests.common.test_http_app import client, serving, tiny_operations


def series_count() -> int:
    text = generate_latest().decode()
    return sum(
        len(family.samples)
        for family in text_string_to_metric_families(text)
        if family.name.startswith("clair_http_")
    )


def test_method_label_keeps_standard_methods_only() -> None:
    assert method_label("GET") == "get"
    assert method_label("DELETE") == "delete"
    assert method_label("FOO123") == "unknown"
    assert method_label("get") == "unknown"  # methods are case-sensitive tokens


async def test_junk_methods_and_paths_add_no_series() -> None:
    # limit=0 refuses every request it applies to, so each junk path reaches the refusal counter.
    refuse_all = Middleware(
        ConcurrencyLimitMiddleware,
        limit=0,
        applies=lambda method, path: path.startswith("/indexer/api/v1/junk"),
        endpoints=frozenset({"/indexer/api/v1/index_report"}),
    )
    apps = [
        build_api_app(tiny_operations(), extra_middleware=[refuse_all]),
        build_api_app(tiny_operations(), psk_key=b"k" * 32, psk_issuers=("quay",)),
    ]
    for app in apps:
        async with serving(app) as url, client() as http:

            async def burst(start: int) -> None:
                for i in range(start, start + 60):
                    async with http.request(f"JUNK{i}", f"{url}/indexer/api/v1/index_state"):
                        pass
                    async with http.request(f"X{i}", f"{url}/indexer/api/v1/junk{i}"):
                        pass
                    async with http.post(f"{url}/indexer/api/v1/junk{i}"):
                        pass

            await burst(0)  # the first burst may create the fixed set of "unknown" series
            before = series_count()
            await burst(1000)
            assert series_count() == before
    text = generate_latest().decode()
    assert "JUNK" not in text and "junk" not in text.lower()
    assert 'method="unknown"' in text
