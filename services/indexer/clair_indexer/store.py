"""All SQL of the indexer (schema `indexer`, migrations in ./migrations)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from clair_common.models import (
    DISTRIBUTION_FIELDS,
    Distribution,
    IndexReport,
    Package,
    Repository,
)
from clair_common.telemetry import traced
from clair_common.vulnerable import Constraint, IndexRecord
from clair_indexer.store_metrics import STORE


@dataclass(slots=True)
class ScannerRow:
    name: str
    version: str
    kind: str


@dataclass(slots=True)
class LayerArtifacts:
    """What the scanners stored for one layer, read back for coalescing."""

    packages: list[tuple[str, Package]] = field(default_factory=list)  # (scanner name, package)
    distributions: list[tuple[str, Distribution]] = field(default_factory=list)
    repositories: list[tuple[str, Repository]] = field(default_factory=list)
    whiteouts: set[str] = field(default_factory=set)
    opaque_dirs: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ScanOutput:
    """Results of one scanner over one layer, ready to store."""

    scanner_id: int
    packages: Sequence[Package] = ()
    distributions: Sequence[Distribution] = ()
    repositories: Sequence[Repository] = ()


class _InternedRows:
    """A table of deduplicated rows (dist, repo) and its `<table>_scanartifact` link table.

    A row is inserted unless an equal one exists, its id read back by all its columns, then
    the (row, scanner, layer) link recorded.
    """

    def __init__(self, table: str, columns: Sequence[str], method: str) -> None:
        self.method = method  # claircore's store method doing this work
        placeholders = ",".join(f"${i}" for i in range(1, len(columns) + 1))
        self.insert = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
            " ON CONFLICT DO NOTHING"
        )
        self.select_id = f"SELECT id FROM {table} WHERE " + " AND ".join(
            f"{column}=${i}" for i, column in enumerate(columns, 1)
        )
        self.link = (
            f"INSERT INTO {table}_scanartifact ({table}_id, scanner_id, layer_id)"
            " VALUES ($1,$2,$3) ON CONFLICT DO NOTHING"
        )

    async def store(
        self, conn: asyncpg.Connection, values: Sequence[str], layer_id: int, scanner_id: int
    ) -> None:
        with STORE.observed(self.method, "insert_batch"):
            await conn.execute(self.insert, *values)
            row_id = await conn.fetchval(self.select_id, *values)
        with STORE.observed(self.method, "insertWith_batch"):
            await conn.execute(self.link, row_id, scanner_id, layer_id)


_DIST_ROWS = _InternedRows("dist", DISTRIBUTION_FIELDS[1:], "indexdistributions")
_REPO_ROWS = _InternedRows("repo", ("name", "key", "uri", "cpe"), "indexrepositories")


class IndexerStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def register_scanners(self, scanners: Sequence[ScannerRow]) -> list[int]:
        async with self.pool.acquire() as conn:
            with STORE.observed("registerscanners", "insert"):
                await conn.executemany(
                    "INSERT INTO scanner (name, version, kind) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    [(s.name, s.version, s.kind) for s in scanners],
                )
            with STORE.observed("registerscanners", "exists"):
                rows = await conn.fetch(
                    "SELECT s.id, s.name, s.version, s.kind FROM scanner s"
                    " JOIN unnest($1::text[], $2::text[], $3::text[]) AS i(name, version, kind)"
                    " USING (name, version, kind)",
                    [s.name for s in scanners],
                    [s.version for s in scanners],
                    [s.kind for s in scanners],
                )
        ids = {(r["name"], r["version"], r["kind"]): r["id"] for r in rows}
        return [ids[(s.name, s.version, s.kind)] for s in scanners]

    # One query answers claircore's ManifestScanned and, when it did, IndexReport.
    @STORE.timed("manifestscanned", "selectScanned")
    async def finished_report(
        self, digest: str, scanner_ids: Sequence[int], known_version: int | None = None
    ) -> tuple[int, bytes | None] | None:
        """(version, JSON) of the stored report when every scanner already scanned the manifest.

        The version is the row's xmin: when it equals `known_version` the body is not sent,
        so a caller holding that version re-serves its copy without moving the document.
        """
        row = await self.pool.fetchrow(
            "SELECT ir.xmin::text::bigint AS version,"
            " CASE WHEN ir.xmin::text::bigint = $4 THEN NULL ELSE ir.scan_result::text END AS body"
            " FROM manifest m JOIN indexreport ir ON ir.manifest_id = m.id"
            " WHERE m.hash = $1 AND (SELECT count(*) FROM scanned_manifest sm"
            "   WHERE sm.manifest_id = m.id AND sm.scanner_id = ANY($2::bigint[])) = $3",
            digest,
            list(scanner_ids),
            len(scanner_ids),
            known_version,
        )
        if row is None:
            return None
        body = row["body"]
        return int(row["version"]), body.encode() if body is not None else None

    @STORE.timed("indexreport")
    async def report_json(self, digest: str) -> bytes | None:
        row = await self.pool.fetchval(
            "SELECT ir.scan_result::text FROM manifest m"
            " JOIN indexreport ir ON ir.manifest_id = m.id WHERE m.hash = $1",
            digest,
        )
        return row.encode() if row is not None else None

    async def persist_manifest(
        self, digest: str, layer_digests: Sequence[str]
    ) -> tuple[int, list[int]]:
        """Upserts the manifest and its ordered layers; returns their ids."""
        async with self.pool.acquire() as conn, conn.transaction():
            with STORE.observed("persistmanifest", "insertManifest"):
                await conn.execute(
                    "INSERT INTO manifest (hash) VALUES ($1) ON CONFLICT DO NOTHING", digest
                )
                manifest_id = await conn.fetchval("SELECT id FROM manifest WHERE hash = $1", digest)
            with STORE.observed("persistmanifest", "insertLayer"):
                await conn.execute(
                    "INSERT INTO layer (hash) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                    list(layer_digests),
                )
                rows = await conn.fetch(
                    "SELECT id, hash FROM layer WHERE hash = ANY($1::text[])", list(layer_digests)
                )
            by_hash = {r["hash"]: r["id"] for r in rows}
            layer_ids = [by_hash[d] for d in layer_digests]
            with STORE.observed("persistmanifest", "insertManifestLayer"):
                await conn.execute("DELETE FROM manifest_layer WHERE manifest_id = $1", manifest_id)
                await conn.executemany(
                    "INSERT INTO manifest_layer (manifest_id, layer_id, i) VALUES ($1, $2, $3)",
                    [(manifest_id, lid, i) for i, lid in enumerate(layer_ids)],
                )
        return int(manifest_id), layer_ids

    @STORE.timed("layerscanned", "selectScanned")
    async def scanned_layers(
        self, layer_ids: Sequence[int], scanner_ids: Sequence[int]
    ) -> set[tuple[int, int]]:
        rows = await self.pool.fetch(
            "SELECT layer_id, scanner_id FROM scanned_layer"
            " WHERE layer_id = ANY($1::bigint[]) AND scanner_id = ANY($2::bigint[])",
            list(layer_ids),
            list(scanner_ids),
        )
        return {(r["layer_id"], r["scanner_id"]) for r in rows}

    @traced("store layer")
    async def store_layer(
        self,
        layer_id: int,
        outputs: Sequence[ScanOutput],
        whiteouts: tuple[Sequence[str], Sequence[str]] | None,
        whiteout_scanner_id: int | None,
    ) -> None:
        """Stores one layer's results and marks it scanned, all in one transaction.

        Inserts are idempotent, so two replicas scanning the same new layer converge.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            for out in outputs:
                await self._store_packages(conn, layer_id, out)
                await self._store_dists(conn, layer_id, out)
                await self._store_repos(conn, layer_id, out)
            if whiteouts is not None:  # claircore's whiteout file scanner
                paths, opaque = whiteouts
                with STORE.observed("indexfiles", "insertWith_batch"):
                    await conn.execute(
                        "INSERT INTO layer_whiteout (layer_id, path, opaque)"
                        " SELECT $1, p, o FROM unnest($2::text[], $3::bool[]) AS t(p, o)"
                        " ON CONFLICT DO NOTHING",
                        layer_id,
                        [*paths, *opaque],
                        [False] * len(paths) + [True] * len(opaque),
                    )
            scanner_ids = [o.scanner_id for o in outputs]
            if whiteout_scanner_id is not None:
                scanner_ids.append(whiteout_scanner_id)
            with STORE.observed("setlayerscanned"):
                await conn.execute(
                    "INSERT INTO scanned_layer (layer_id, scanner_id)"
                    " SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
                    layer_id,
                    scanner_ids,
                )

    @staticmethod
    async def _package_ids(conn: asyncpg.Connection, pkgs: Sequence[Package]) -> list[int]:
        if not pkgs:
            return []
        cols: list[list[str]] = [[], [], [], [], [], [], []]
        for p in pkgs:
            norm_kind, _, norm_version = p.normalized_version.partition(":")
            for col, value in zip(
                cols,
                (p.name, p.version, p.kind, p.module, p.arch, norm_kind, norm_version),
                strict=True,
            ):
                col.append(value)
        # Insert, then read back in a second statement: a row another replica committed
        # meanwhile is invisible to the inserting statement's snapshot but not to the next.
        await conn.execute(
            "INSERT INTO package (name, version, kind, module, arch, norm_kind, norm_version)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::text[], $7::text[]) ON CONFLICT DO NOTHING",
            *cols,
        )
        rows = await conn.fetch(
            "SELECT p.id, i.ord FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[]) WITH ORDINALITY AS i(name, version, kind, module, arch, ord)"
            " JOIN package p USING (name, version, kind, module, arch)",
            *cols[:5],
        )
        ids = [0] * len(pkgs)
        for r in rows:
            ids[r["ord"] - 1] = r["id"]
        return ids

    async def _store_packages(
        self, conn: asyncpg.Connection, layer_id: int, out: ScanOutput
    ) -> None:
        if not out.packages:
            return
        sources = [p.source for p in out.packages if p.source is not None]
        with STORE.observed("indexpackage", "insert_batch"):
            ids = await self._package_ids(conn, list(out.packages))
            source_ids = iter(await self._package_ids(conn, sources))
        source_column = [next(source_ids) if p.source is not None else None for p in out.packages]
        with STORE.observed("indexpackage", "insertWith_batch"):
            # One statement for the layer's rows, not one per package (an 800-package layer:
            # 17 -> 14 ms; what remains is mostly the foreign-key and unique-index checks).
            await conn.execute(
                "INSERT INTO package_scanartifact (layer_id, package_id, source_id, scanner_id,"
                " package_db, repository_hint, filepath, cpe)"
                " SELECT $1, p, s, $2, d, h, f, c FROM unnest($3::bigint[], $4::bigint[],"
                " $5::text[], $6::text[], $7::text[], $8::text[]) AS t(p, s, d, h, f, c)"
                " ON CONFLICT DO NOTHING",
                layer_id,
                out.scanner_id,
                ids,
                source_column,
                [p.package_db for p in out.packages],
                [p.repository_hint for p in out.packages],
                [p.filepath for p in out.packages],
                [p.cpe for p in out.packages],
            )

    async def _store_dists(self, conn: asyncpg.Connection, layer_id: int, out: ScanOutput) -> None:
        for d in out.distributions:
            await _DIST_ROWS.store(conn, d.key(), layer_id, out.scanner_id)

    async def _store_repos(self, conn: asyncpg.Connection, layer_id: int, out: ScanOutput) -> None:
        for r in out.repositories:
            await _REPO_ROWS.store(conn, r.key_tuple(), layer_id, out.scanner_id)

    async def load_artifacts(
        self, layer_ids: Sequence[int], scanner_ids: dict[int, str]
    ) -> dict[int, LayerArtifacts]:
        """Per-layer artifacts of the given scanners (id → name), for coalescing."""
        out = {lid: LayerArtifacts() for lid in layer_ids}
        ids, sids = list(layer_ids), list(scanner_ids)
        async with self.pool.acquire() as conn:
            with STORE.observed("packagesbylayer"):
                rows = await conn.fetch(
                    "SELECT a.layer_id, a.scanner_id, a.package_db, a.repository_hint, a.filepath,"
                    " a.cpe, p.id, p.name, p.version, p.kind, p.module, p.arch, p.norm_kind,"
                    " p.norm_version, s.id AS sid, s.name AS sname, s.version AS sversion,"
                    " s.kind AS skind, s.module AS smodule, s.arch AS sarch"
                    " FROM package_scanartifact a JOIN package p ON p.id = a.package_id"
                    " LEFT JOIN package s ON s.id = a.source_id"
                    " WHERE a.layer_id = ANY($1::bigint[]) AND a.scanner_id = ANY($2::bigint[])",
                    ids,
                    sids,
                )
            for r in rows:
                source = None
                if r["sid"] is not None:
                    source = Package(
                        id=str(r["sid"]),
                        name=r["sname"],
                        version=r["sversion"],
                        kind=r["skind"],
                        module=r["smodule"],
                        arch=r["sarch"],
                    )
                pkg = Package(
                    id=str(r["id"]),
                    name=r["name"],
                    version=r["version"],
                    kind=r["kind"],
                    source=source,
                    module=r["module"],
                    arch=r["arch"],
                    cpe=r["cpe"],
                    normalized_version=f"{r['norm_kind']}:{r['norm_version']}"
                    if r["norm_kind"]
                    else "",
                    package_db=r["package_db"],
                    repository_hint=r["repository_hint"],
                    filepath=r["filepath"],
                )
                out[r["layer_id"]].packages.append((scanner_ids[r["scanner_id"]], pkg))
            with STORE.observed("distributionbylayer"):
                rows = await conn.fetch(
                    "SELECT a.layer_id, a.scanner_id, d.* FROM dist_scanartifact a"
                    " JOIN dist d ON d.id = a.dist_id"
                    " WHERE a.layer_id = ANY($1::bigint[]) AND a.scanner_id = ANY($2::bigint[])",
                    ids,
                    sids,
                )
            for r in rows:
                dist = Distribution.from_json(
                    {k: v for k, v in r.items() if k not in ("layer_id", "scanner_id")}
                )
                out[r["layer_id"]].distributions.append((scanner_ids[r["scanner_id"]], dist))
            with STORE.observed("repositoriesbylayer"):
                rows = await conn.fetch(
                    "SELECT a.layer_id, a.scanner_id, p.* FROM repo_scanartifact a"
                    " JOIN repo p ON p.id = a.repo_id"
                    " WHERE a.layer_id = ANY($1::bigint[]) AND a.scanner_id = ANY($2::bigint[])",
                    ids,
                    sids,
                )
            for r in rows:
                repo = Repository(str(r["id"]), r["name"], r["key"], r["uri"], r["cpe"])
                out[r["layer_id"]].repositories.append((scanner_ids[r["scanner_id"]], repo))
            with STORE.observed("filesbylayer"):
                rows = await conn.fetch(
                    "SELECT layer_id, path, opaque FROM layer_whiteout"
                    " WHERE layer_id = ANY($1::bigint[])",
                    ids,
                )
            for r in rows:
                target = (
                    out[r["layer_id"]].opaque_dirs if r["opaque"] else out[r["layer_id"]].whiteouts
                )
                target.add(r["path"])
        return out

    @STORE.timed("setindexreport")
    async def set_report(self, manifest_id: int, report: IndexReport) -> None:
        await self.pool.execute(
            "INSERT INTO indexreport (manifest_id, state, scan_result) VALUES ($1, $2, $3)"
            " ON CONFLICT (manifest_id) DO UPDATE SET state = EXCLUDED.state,"
            " scan_result = EXCLUDED.scan_result",
            manifest_id,
            report.state,
            report.to_json(),
        )

    @traced("store index report")
    async def finish(
        self,
        manifest_id: int,
        report: IndexReport,
        index_rows: Sequence[tuple[int, int | None, int | None]],
        scanner_ids: Sequence[int],
    ) -> None:
        """Writes the manifest index, the final report and scanned_manifest atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            with STORE.observed("indexmanifest", "query_batch"):
                await conn.execute("DELETE FROM manifest_index WHERE manifest_id = $1", manifest_id)
                if index_rows:
                    await conn.execute(
                        "INSERT INTO manifest_index (package_id, dist_id, repo_id, manifest_id)"
                        " SELECT DISTINCT p, d, r, $4::bigint FROM unnest($1::bigint[],"
                        " $2::bigint[], $3::bigint[]) AS t(p, d, r) ON CONFLICT DO NOTHING",
                        [r[0] for r in index_rows],
                        [r[1] for r in index_rows],
                        [r[2] for r in index_rows],
                        manifest_id,
                    )
            with STORE.observed("setindexfinished", "upsertIndexReport"):
                await conn.execute(
                    "INSERT INTO indexreport (manifest_id, state, scan_result) VALUES ($1, $2, $3)"
                    " ON CONFLICT (manifest_id) DO UPDATE SET state = EXCLUDED.state,"
                    " scan_result = EXCLUDED.scan_result",
                    manifest_id,
                    report.state,
                    report.to_json(),
                )
            with STORE.observed("setindexfinished", "insertManifestScanned"):
                await conn.execute(
                    "INSERT INTO scanned_manifest (manifest_id, scanner_id)"
                    " SELECT $1, unnest($2::bigint[]) ON CONFLICT DO NOTHING",
                    manifest_id,
                    list(scanner_ids),
                )

    async def delete_manifest(self, digest: str) -> bool:
        """Deletes unless another task holds the manifest; Clair's try-lock semantics."""
        from clair_common.db.locks import lock_key

        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1)", lock_key(f"manifest:{digest}")
            ):
                return False
            with STORE.observed("deletemanifests", "deleteManifest"):
                deleted = await conn.fetchval(
                    "DELETE FROM manifest WHERE hash = $1 RETURNING id", digest
                )
        return deleted is not None

    @contextlib.asynccontextmanager
    async def affected_reads(self) -> AsyncIterator[AffectedReads]:
        """The reads of one affected-manifests request, on one connection."""
        async with self.pool.acquire() as conn:
            yield AffectedReads(conn)


# -- affected manifests (internal/affected_manifest) --------------------------------------
# The equality constraints a query may carry, in the order of their parameter columns.
AFFECTED_EQUALITIES = tuple(c for c in Constraint if c.is_equality)


def _affected_candidates_sql() -> str:
    columns = [c.vuln_column for c in AFFECTED_EQUALITIES]
    params = ", ".join(f"${n}::{'int' if n == 1 else 'text'}[]" for n in range(1, 4 + len(columns)))
    names = ", ".join(["i", "name", "kind", *columns])
    equalities = "".join(
        f"\n  AND (q.{c.vuln_column} IS NULL OR {c.index_column} = q.{c.vuln_column})"
        for c in AFFECTED_EQUALITIES
    )
    return f"""
WITH q AS (
  SELECT * FROM unnest({params}) AS q({names})
), hit AS (
  SELECT q.i, p.id AS package_id FROM q JOIN package p ON p.name = q.name AND p.kind = q.kind
  UNION
  SELECT q.i, a.package_id FROM q
  JOIN package s ON s.name = q.name AND s.kind = q.kind
  JOIN package_scanartifact a ON a.source_id = s.id
)
SELECT DISTINCT hit.i, mi.package_id, coalesce(mi.dist_id, 0) AS dist_id,
  coalesce(mi.repo_id, 0) AS repo_id, p.name, p.version, p.kind, p.norm_kind, p.norm_version,
  p.module, p.arch, d.did, d.name AS dist_name, d.version AS dist_version,
  d.version_code_name, d.version_id, d.arch AS dist_arch, d.cpe AS dist_cpe, d.pretty_name,
  r.name AS repo_name, r.key AS repo_key, r.uri AS repo_uri, r.cpe AS repo_cpe
FROM hit
JOIN q ON q.i = hit.i
JOIN manifest_index mi ON mi.package_id = hit.package_id
JOIN package p ON p.id = mi.package_id
LEFT JOIN dist d ON d.id = mi.dist_id
LEFT JOIN repo r ON r.id = mi.repo_id
WHERE TRUE{equalities}
"""


_AFFECTED_CANDIDATES_SQL = _affected_candidates_sql()
# Uses manifest_index_unique (package_id, coalesce(dist_id, 0), coalesce(repo_id, 0), ...).
_AFFECTED_MANIFESTS_SQL = """
SELECT t.k, m.hash
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS t(p, d, r, k)
JOIN manifest_index mi ON mi.package_id = t.p AND coalesce(mi.dist_id, 0) = t.d
  AND coalesce(mi.repo_id, 0) = t.r
JOIN manifest m ON m.id = mi.manifest_id
"""


def _index_record(row: asyncpg.Record) -> IndexRecord:
    norm_kind = row["norm_kind"]
    package = Package(
        id=str(row["package_id"]),
        name=row["name"],
        version=row["version"],
        kind=row["kind"],
        module=row["module"],
        arch=row["arch"],
        normalized_version=f"{norm_kind}:{row['norm_version']}" if norm_kind else "",
    )
    dist = None
    if row["dist_id"]:
        dist = Distribution(
            id=str(row["dist_id"]),
            did=row["did"],
            name=row["dist_name"],
            version=row["dist_version"],
            version_code_name=row["version_code_name"],
            version_id=row["version_id"],
            arch=row["dist_arch"],
            cpe=row["dist_cpe"],
            pretty_name=row["pretty_name"],
        )
    repo = None
    if row["repo_id"]:
        repo = Repository(
            id=str(row["repo_id"]),
            name=row["repo_name"],
            key=row["repo_key"],
            uri=row["repo_uri"],
            cpe=row["repo_cpe"],
        )
    return IndexRecord(package, dist, repo)


class AffectedReads:
    """The reads of one affected-manifests request (internal/affected_manifest), on one
    connection: candidate index records of a batch of queries, then the manifests of those
    found vulnerable."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def candidates(
        self, columns: Sequence[Sequence[object]]
    ) -> list[tuple[int, tuple[int, int, int], IndexRecord]]:
        """(query index, (package, dist, repo) ids, record) of every indexed record a query
        names. `columns`: query indexes, package names, kinds, then one column per
        `AFFECTED_EQUALITIES` entry (None: unconstrained)."""
        with STORE.observed("affectedmanifests", "vulnerabilityToPackages"):
            rows = await self._conn.fetch(_AFFECTED_CANDIDATES_SQL, *columns)
        return [
            (row["i"], (row["package_id"], row["dist_id"], row["repo_id"]), _index_record(row))
            for row in rows
        ]

    async def manifests(self, triples: Sequence[tuple[int, int, int]]) -> list[tuple[int, str]]:
        """(position in `triples`, manifest digest) of every manifest indexing one of them."""
        with STORE.observed("affectedmanifests", "selectAffected"):
            rows = await self._conn.fetch(
                _AFFECTED_MANIFESTS_SQL,
                [t[0] for t in triples],
                [t[1] for t in triples],
                [t[2] for t in triples],
            )
        return [(row["k"] - 1, row["hash"]) for row in rows]


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc)
