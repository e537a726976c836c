"""Which indexed manifests a set of vulnerabilities affects (internal/affected_manifest)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from clair_common.models import AffectedManifests, Vulnerability

if TYPE_CHECKING:
    from clair_indexer.store import IndexerStore


async def affected_manifests(
    store: IndexerStore, vulns: Sequence[Vulnerability]
) -> AffectedManifests:
    raise NotImplementedError("affected manifests arrive with the matcher's vulnerability rules")
