"""The indexer: Manifest in, IndexReport out (clair-api.md 5), satisfying clients.Indexer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import orjson

from clair_common.cache import BoundedCache
from clair_common.db.locks import AdvisoryLocks
from clair_common.http.compress import EncodedBody
from clair_common.models import (
    AffectedManifests,
    IndexReport,
    IndexState,
    Layer,
    Manifest,
    Vulnerability,
)
from clair_common.telemetry import current_context, span, traced, tracing
from clair_indexer.affected import affected_manifests
from clair_indexer.coalesce import CoalescedLayer, coalesce
from clair_indexer.fetch import FetchError, LayerFetcher
from clair_indexer.host_slots import HostGate, HostQuota, layer_host
from clair_indexer.layer import LayerFormatError, read_layer
from clair_indexer.scanners import Scanner, detector
from clair_indexer.scanners.base import probe_chain
from clair_indexer.store import IndexerStore, ScannerRow, ScanOutput
from clair_indexer.store_metrics import SCANNED_MANIFESTS

log = logging.getLogger("clair.indexer")

# The whiteout bookkeeping is versioned like a scanner so a change re-scans layers.
WHITEOUT_SCANNER = ScannerRow("whiteout", "1", "file")
# Finished reports kept in memory for re-POSTs (validated against the row version each time).
REPORT_CACHE_BYTES = 64 << 20
REPORT_FRESHNESS = 1.0  # seconds a validated cached report is served without asking again


@dataclass
class _HeldReport:
    """A finished report kept for re-POSTs, with the compressed variants asked for."""

    version: int  # of its database row, to validate it with
    body: EncodedBody
    validated: float  # monotonic time of the last validation against the database

    def cost(self) -> int:
        return self.body.size


class IndexFailed(Exception):
    """Indexing ended in an IndexError report; `client_error` marks bad input (HTTP 400)."""

    def __init__(self, message: str, client_error: bool) -> None:
        super().__init__(message)
        self.client_error = client_error


def index_state(scanners: Sequence[ScannerRow]) -> str:
    """Clair's state: changes exactly when the scanner set or a scanner version changes.

    Computed as claircore's libindex does: md5 of its version magic, then one
    `name+version+kind` line per scanner name (the last of a name wins), sorted by name.
    """
    lines = {s.name: f"{s.name}{s.version}{s.kind}\n" for s in scanners}
    h = hashlib.md5(b"libindex number: 2\n", usedforsecurity=False)
    for name in sorted(lines):
        h.update(lines[name].encode())
    return h.hexdigest()


@dataclass(slots=True)
class _Registered:
    scanner: Scanner | None
    row: ScannerRow
    id: int


class IndexerService:
    def __init__(
        self,
        store: IndexerStore,
        locks: AdvisoryLocks,
        fetcher: LayerFetcher,
        scanners: Sequence[Scanner],
        *,
        layer_scan_concurrency: int = 10,
        max_manifest_layers: int | None = None,
        host_quota: HostQuota | None = None,
        host_gate: HostGate | None = None,
    ) -> None:
        """`host_quota` shares index requests out per layer host (HostBusy past a share),
        `host_gate` layer downloads (see `clair_indexer.host_slots`); None: no shares."""
        self.store = store
        # None or below 1: no limit on the layers of a posted manifest.
        self.max_manifest_layers = (
            max_manifest_layers if max_manifest_layers and max_manifest_layers > 0 else None
        )
        self.locks = locks
        self.fetcher = fetcher
        self.scanners = list(scanners)
        self._rows = [ScannerRow(s.name, s.version, s.kind) for s in self.scanners]
        self._state = index_state([*self._rows, WHITEOUT_SCANNER])
        self._registered: list[_Registered] = []
        self._scan_slots = asyncio.Semaphore(max(1, layer_scan_concurrency))
        self._host_quota = host_quota or HostQuota(None)
        self._host_gate = host_gate or HostGate(None)
        self._reports: BoundedCache[str, _HeldReport] = BoundedCache(
            REPORT_CACHE_BYTES, _HeldReport.cost
        )

    async def start(self) -> None:
        ids = await self.store.register_scanners([*self._rows, WHITEOUT_SCANNER])
        self._registered = [
            _Registered(s, row, i)
            for s, row, i in zip(
                [*self.scanners, None], [*self._rows, WHITEOUT_SCANNER], ids, strict=True
            )
        ]

    @property
    def _scanner_ids(self) -> list[int]:
        return [r.id for r in self._registered]

    async def state(self) -> str:
        return self._state

    async def index_report_json(self, digest: str) -> bytes | None:
        """A finished report from the copy held for re-POSTs (validated against the database
        at most once a second, as a remote matcher holds them too), any other from the
        database. A combo matcher asks for it on every vulnerability report: reading 100 KiB
        of JSON out of PostgreSQL each time was over half of a cached report's work."""
        done = await self._finished(digest)
        if done is not None:
            return done.identity
        return await self.store.report_json(digest)

    async def index(self, manifest: Manifest) -> IndexReport:
        return IndexReport.from_json(orjson.loads(await self.index_json(manifest)))

    async def index_json(self, manifest: Manifest) -> bytes:
        """The finished report's JSON."""
        return (await self.index_body(manifest)).identity

    async def index_body(self, manifest: Manifest) -> EncodedBody:
        """The finished report; re-POSTs of an indexed manifest are one small query, and get the
        body held for them, compressed once per encoding (clients re-POST all day)."""
        done = await self._finished(manifest.hash)
        if done is not None:
            SCANNED_MANIFESTS.inc("true")
            return done
        hosts = {layer_host(layer.uri) for layer in manifest.layers}
        with self._host_quota.claim(hosts):
            async with self.locks.hold(f"manifest:{manifest.hash}"):
                # Another task or replica may have finished it while we waited for the lock.
                done = await self._finished(manifest.hash)
                SCANNED_MANIFESTS.inc("false" if done is None else "true")
                if done is not None:
                    return done
                report = await self._run(manifest)
                return EncodedBody(orjson.dumps(report.to_json()))

    async def finished_json(self, digest: str) -> bytes | None:
        """The finished report's JSON, validated against the database at most once a second."""
        done = await self._finished(digest)
        return None if done is None else done.identity

    async def _finished(self, digest: str) -> EncodedBody | None:
        held = self._reports.get(digest)
        now = time.monotonic()
        if held is not None and now - held.validated < REPORT_FRESHNESS:
            # Validated a moment ago: a re-POST racing a delete on another replica could have
            # been served just before that delete anyway.
            return held.body
        found = await self.store.finished_report(
            digest, self._scanner_ids, held.version if held else None
        )
        if found is None:
            self._forget(digest)
            return None
        version, body = found
        if body is None and held is not None:  # unchanged since `held.version`
            held.version, held.validated = version, now
            return held.body
        assert body is not None
        held = _HeldReport(version, EncodedBody(body, partial(self._reports.recost, digest)), now)
        self._reports.put(digest, held)
        return held.body

    def _forget(self, digest: str) -> None:
        self._reports.pop(digest)

    @traced("index manifest")
    async def _run(self, manifest: Manifest) -> IndexReport:
        report = IndexReport(manifest_hash=manifest.hash, state=IndexState.CHECK_MANIFEST)
        manifest_id, layer_ids = await self.store.persist_manifest(
            manifest.hash, [layer.hash for layer in manifest.layers]
        )
        await self.store.set_report(manifest_id, report)
        try:
            report.state = IndexState.FETCH_LAYERS
            await self.store.set_report(manifest_id, report)
            await self._scan_layers(manifest, layer_ids, report, manifest_id)

            report.state = IndexState.COALESCE
            await self.store.set_report(manifest_id, report)
            names = {r.id: r.row.name for r in self._registered}
            artifacts = await self.store.load_artifacts(layer_ids, names)
            detectors = {s.name: detector(s) for s in self.scanners}
            for art in artifacts.values():
                for scanner_name, pkg in art.packages:
                    pkg.detector = detectors.get(scanner_name)
            ecosystems = {s.name: s.ecosystem for s in self.scanners}
            layers = [
                CoalescedLayer(layer.hash, artifacts[lid])
                for layer, lid in zip(manifest.layers, layer_ids, strict=True)
            ]
            with span("coalesce"):
                final, index_rows = coalesce(manifest.hash, layers, ecosystems)

            final.state = IndexState.FINISHED
            final.success = True
            await self.store.finish(manifest_id, final, index_rows, self._scanner_ids)
            return final
        except BaseExceptionGroup as group:
            # Layer scans run in a task group; report the first failure as if raised alone.
            err = _first_leaf(group)
            await self._fail(manifest_id, report, str(err))
            raise IndexFailed(str(err), client_error=_client_error(err)) from err
        except (FetchError, LayerFormatError) as err:
            await self._fail(manifest_id, report, str(err))
            raise IndexFailed(str(err), client_error=_client_error(err)) from err
        except Exception as err:
            log.exception("indexing %s failed", manifest.hash)
            await self._fail(manifest_id, report, str(err))
            raise IndexFailed(str(err), client_error=False) from err

    async def _fail(self, manifest_id: int, report: IndexReport, message: str) -> None:
        report.state = IndexState.ERROR
        report.success = False
        report.err = message
        await self.store.set_report(manifest_id, report)

    async def _scan_layers(
        self, manifest: Manifest, layer_ids: list[int], report: IndexReport, manifest_id: int
    ) -> None:
        done = await self.store.scanned_layers(layer_ids, self._scanner_ids)
        todo = []
        seen: set[int] = set()
        for layer, lid in zip(manifest.layers, layer_ids, strict=True):
            missing = [r for r in self._registered if (lid, r.id) not in done]
            if missing and lid not in seen:
                seen.add(lid)
                todo.append((layer, lid, missing))
        if not todo:
            return
        report.state = IndexState.SCAN_LAYERS
        await self.store.set_report(manifest_id, report)
        async with asyncio.TaskGroup() as group:
            for layer, lid, missing in todo:
                group.create_task(self._scan_one(layer, lid, missing))

    @traced("fetch and scan layer")
    async def _scan_one(self, layer: Layer, layer_id: int, missing: list[_Registered]) -> None:
        scanners = [r for r in missing if r.scanner is not None]
        wants = [r.scanner.wants for r in scanners if r.scanner is not None]

        def wanted(path: str) -> bool:
            return any(w(path) for w in wants)

        prober = probe_chain([r.scanner for r in scanners if r.scanner is not None])
        parent = current_context()  # the worker thread below does not inherit it

        def scan(blob: BinaryIO) -> tuple[list[ScanOutput], tuple[list[str], list[str]]]:
            # One span for the walk and one per scanner, never per file: the walk is hot.
            with span("read layer", {"layer.digest": layer.hash}, parent):
                contents = read_layer(blob, wanted, prober=prober)
            outputs = []
            for r in scanners:
                assert r.scanner is not None
                with span("scan layer", _scanner_attributes(r.row, layer), parent):
                    result = r.scanner.scan(contents)
                outputs.append(
                    ScanOutput(r.id, result.packages, result.distributions, result.repositories)
                )
            return outputs, (sorted(contents.whiteouts), sorted(contents.opaque_dirs))

        # The host's turn first: layers waiting on a busy host must not hold scan slots.
        async with self._host_gate.hold(layer_host(layer.uri)), self._scan_slots:
            outputs, whiteouts = await self.fetcher.fetch_through(layer, scan)
        whiteout_id = next((r.id for r in missing if r.scanner is None), None)
        await self.store.store_layer(layer_id, outputs, whiteouts, whiteout_id)

    async def delete_manifests(self, digests: Sequence[str]) -> list[str]:
        deleted = []
        for digest in digests:
            self._forget(digest)
            if await self.store.delete_manifest(digest):
                deleted.append(digest)
        return deleted

    async def affected_manifests(self, vulns: Sequence[Vulnerability]) -> AffectedManifests:
        return await affected_manifests(self.store, vulns)


def _scanner_attributes(row: ScannerRow, layer: Layer) -> dict[str, str] | None:
    if not tracing():
        return None
    return {
        "scanner.name": row.name,
        "scanner.version": row.version,
        "scanner.kind": row.kind,
        "layer.digest": layer.hash,
    }


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _client_error(err: BaseException) -> bool:
    if isinstance(err, LayerFormatError):
        return True
    return bool(getattr(err, "client_error", False))
