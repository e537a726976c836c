"""The contract between services: what each may ask of the other.

The service objects satisfy these Protocols directly (combo mode wires them by reference);
`clair_common.remote` implements them over HTTP for the distributed modes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from clair_common.models import (
    AffectedManifests,
    IndexReport,
    Manifest,
    UpdateDiff,
    UpdateOperation,
    Vulnerability,
    VulnerabilityReport,
)


class Indexer(Protocol):
    async def index(self, manifest: Manifest) -> IndexReport: ...

    async def index_report_json(self, digest: str) -> bytes | None:
        """The stored report's JSON as served: the same bytes for the same report."""
        ...

    async def state(self) -> str: ...

    async def affected_manifests(self, vulns: Sequence[Vulnerability]) -> AffectedManifests: ...

    async def delete_manifests(self, digests: Sequence[str]) -> list[str]: ...


class Matcher(Protocol):
    async def scan(self, report: IndexReport) -> VulnerabilityReport: ...

    async def update_operations(
        self, kind: str = "vulnerability", *, latest: bool = False, updaters: Sequence[str] = ()
    ) -> dict[str, list[UpdateOperation]]: ...

    async def update_diff(self, prev: str | None, cur: str) -> UpdateDiff: ...

    def update_diff_batches(
        self, prev: str | None, cur: str, size: int
    ) -> AsyncIterator[tuple[str, list[Vulnerability]]]:
        """The diff's ("added", batch)es, then its ("removed", batch)es, `size` at most each."""
        ...

    async def delete_update_operations(self, refs: Sequence[str]) -> int: ...
