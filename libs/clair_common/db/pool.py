"""asyncpg pools: one per service, confined to the service's schema, with pool metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

# Pools are few and long-lived; closed ones are dropped when metrics are next collected.
_POOLS: dict[str, asyncpg.Pool] = {}


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )


async def _keep_session(_: asyncpg.Connection) -> None:
    """Pool connections never change session state (no SET, LISTEN or session locks: those
    use dedicated connections), so the full RESET ALL round trip on every release is skipped.
    asyncpg still rolls back a transaction left open."""


async def create_pool(
    dsn: str | None,
    *,
    schema: str,
    application_name: str,
    min_size: int = 1,
    max_size: int = 20,
) -> asyncpg.Pool:
    """A pool whose connections see `schema` first; dsn None or "" uses libpq's PG* environment."""
    pool = await asyncpg.create_pool(
        dsn or None,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"application_name": application_name, "search_path": f"{schema},public"},
    )
    assert pool is not None
    _POOLS[application_name] = pool
    return pool


class PoolCollector(Collector):
    """Exports pool sizes under pgx's metric names so Clair's dashboards keep working."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "max": GaugeMetricFamily(
                "pgxpool_max_conns", "Maximum pool size.", labels=["application_name"]
            ),
            "total": GaugeMetricFamily(
                "pgxpool_total_conns", "Open connections.", labels=["application_name"]
            ),
            "idle": GaugeMetricFamily(
                "pgxpool_idle_conns", "Idle connections.", labels=["application_name"]
            ),
            "acquired": GaugeMetricFamily(
                "pgxpool_acquired_conns", "Connections in use.", labels=["application_name"]
            ),
        }
        for name, pool in list(_POOLS.items()):
            if pool.is_closing():
                _POOLS.pop(name, None)
                continue
            total, idle = pool.get_size(), pool.get_idle_size()
            families["max"].add_metric([name], pool.get_max_size())
            families["total"].add_metric([name], total)
            families["idle"].add_metric([name], idle)
            families["acquired"].add_metric([name], total - idle)
        yield from families.values()


REGISTRY.register(PoolCollector())
