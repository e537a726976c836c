"""Coalescing: per-layer scan artifacts → one IndexReport (clair-api.md 5.2 step 4, 5.3).

Per ecosystem, walking layers newest to oldest, each package database is taken from the newest
layer that has it; a later layer's whiteout (or opaque directory) deletes it. Every surviving
package gets one Environment: its database, the oldest layer of the unbroken run of layers
that carried it, and the distribution detected at or below that layer.

Red Hat rule (claircore rhel/coalescer.go): rpm packages also get the CPE repositories
(`rhel-cpe-repository`) found in the layer that introduced them. A layer without any borrows
those of the nearest older layer that has some (a user's layers on a Red Hat base image), else
of the nearest newer one.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clair_common.models import (
    Distribution,
    Environment,
    IndexReport,
    IndexState,
    Package,
    Repository,
)
from clair_indexer.store import LayerArtifacts

# Ecosystems whose packages are independent files rather than rows of one database.
LANGUAGE_ECOSYSTEMS = frozenset({"python", "gobin"})
# Ecosystems whose packages carry the image's Red Hat CPE repositories.
RHEL_CPE_ECOSYSTEMS = frozenset({"rhel", "rpm"})
RHEL_REPOSITORY_KEY = "rhel-cpe-repository"
# The image's own build labels (claircore's rhcc coalescer): found in a Red Hat image, but
# describing the image, not a package of its distribution.
DISTRIBUTIONLESS_ECOSYSTEMS = frozenset({"rhcc"})


@dataclass(frozen=True, slots=True)
class CoalescedLayer:
    digest: str
    artifacts: LayerArtifacts


def _deleted_by(path: str, later: Sequence[LayerArtifacts]) -> bool:
    """Whether a whiteout or opaque directory in any later layer removes `path`."""
    parents = []
    p = path
    while p and p != ".":
        parents.append(p)
        p = posixpath.dirname(p)
    for art in later:
        for candidate in parents:
            if candidate in art.whiteouts:
                return True
            if candidate != path and candidate in art.opaque_dirs:
                return True
    return False


def shared_cpe_repositories(arts: Sequence[LayerArtifacts]) -> list[list[Repository]]:
    """Per layer, its Red Hat CPE repositories, or the nearest older (else newer) layer's."""
    own = [[r for _, r in art.repositories if r.key == RHEL_REPOSITORY_KEY] for art in arts]
    shared = list(own)
    borrowed: list[Repository] = []
    for order in (range(len(shared)), range(len(shared) - 1, -1, -1)):
        for i in order:
            if shared[i]:
                borrowed = shared[i]
            else:
                shared[i] = borrowed
    return shared


def _package_key(p: Package) -> tuple[str, str, str, str, str]:
    return (p.name, p.version, p.kind, p.module, p.arch)


def coalesce(
    digest: str,
    layers: Sequence[CoalescedLayer],
    ecosystems: Mapping[str, str],
) -> tuple[IndexReport, list[tuple[int, int | None, int | None]]]:
    """Returns the report and its manifest-index rows (package id, dist id, repo id)."""
    report = IndexReport(manifest_hash=digest, state=IndexState.INDEX_MANIFEST, success=False)
    index_rows: list[tuple[int, int | None, int | None]] = []
    arts = [layer.artifacts for layer in layers]

    # The distribution in force at each layer: the newest one detected at or below it.
    dist_at: list[Distribution | None] = []
    current: Distribution | None = None
    for art in arts:
        if art.distributions:
            current = art.distributions[-1][1]
        dist_at.append(current)
    newest_dist = current
    cpe_repos = shared_cpe_repositories(arts)

    by_ecosystem: dict[str, dict[int, list[Package]]] = {}
    for i, art in enumerate(arts):
        for scanner, pkg in art.packages:
            eco = ecosystems.get(scanner, scanner)
            by_ecosystem.setdefault(eco, {}).setdefault(i, []).append(pkg)

    for eco, per_layer in by_ecosystem.items():
        if eco in LANGUAGE_ECOSYSTEMS:
            _coalesce_language(report, index_rows, layers, per_layer)
            continue
        chosen: dict[str, int] = {}  # package db → newest layer holding it
        for i in sorted(per_layer, reverse=True):
            for pkg in per_layer[i]:
                chosen.setdefault(pkg.package_db, i)
        for db, i in chosen.items():
            if _deleted_by(db, arts[i + 1 :]):
                continue
            for pkg in (p for p in per_layer[i] if p.package_db == db):
                introduced = _introduced_in(per_layer, db, pkg, i)
                dist = (
                    None
                    if eco in DISTRIBUTIONLESS_ECOSYSTEMS
                    else dist_at[introduced] or newest_dist
                )
                shared = cpe_repos[introduced] if eco in RHEL_CPE_ECOSYSTEMS else []
                _add(report, index_rows, layers[introduced].digest, pkg, dist, arts[i], shared)
    return report, index_rows


def _coalesce_language(
    report: IndexReport,
    index_rows: list[tuple[int, int | None, int | None]],
    layers: Sequence[CoalescedLayer],
    per_layer: Mapping[int, list[Package]],
) -> None:
    """Language packages are files of their own: every layer adds, whiteouts remove.

    A site-packages directory is shared by packages of many layers, so "newest database
    wins" would drop the packages of lower layers. As in Clair, they carry no distribution.
    """
    arts = [layer.artifacts for layer in layers]
    seen: set[tuple[str, tuple[str, str, str, str, str]]] = set()
    for i in sorted(per_layer):
        for pkg in per_layer[i]:
            identity = (pkg.filepath or pkg.package_db, _package_key(pkg))
            if identity in seen or _deleted_by(pkg.filepath or pkg.package_db, arts[i + 1 :]):
                continue
            seen.add(identity)
            _add(report, index_rows, layers[i].digest, pkg, None, arts[i])


def _introduced_in(
    per_layer: Mapping[int, list[Package]], db: str, pkg: Package, newest: int
) -> int:
    """The oldest layer of the unbroken run ending at `newest` whose database has `pkg`."""
    key = _package_key(pkg)
    layer = newest
    for i in range(newest - 1, -1, -1):
        pkgs = per_layer.get(i)
        if pkgs is None or not any(p.package_db == db for p in pkgs):
            continue
        if any(p.package_db == db and _package_key(p) == key for p in pkgs):
            layer = i
        else:
            break
    return layer


def _add(
    report: IndexReport,
    index_rows: list[tuple[int, int | None, int | None]],
    layer_digest: str,
    pkg: Package,
    dist: Distribution | None,
    art: LayerArtifacts,
    shared: Sequence[Repository] = (),
) -> None:
    repos: list[Repository] = []
    if pkg.repository_hint:
        hint = pkg.repository_hint
        repos = [r for _, r in art.repositories if hint in (r.name, r.uri)]
    repos += [r for r in shared if all(r.id != known.id for known in repos)]
    repo_ids = [r.id for r in repos] or None
    out = Package(
        id=pkg.id,
        name=pkg.name,
        version=pkg.version,
        kind=pkg.kind,
        source=pkg.source,
        normalized_version=pkg.normalized_version,
        module=pkg.module,
        arch=pkg.arch,
        cpe=pkg.cpe,
        detector=pkg.detector,
    )
    report.packages[pkg.id] = out
    env = Environment(
        package_db=pkg.package_db,
        introduced_in=layer_digest,
        distribution_id=dist.id if dist is not None else "",
        repository_ids=repo_ids,
    )
    envs = report.environments.setdefault(pkg.id, [])
    if env not in envs:
        envs.append(env)
    if dist is not None:
        report.distributions.setdefault(dist.id, dist)
    for repo in repos:
        report.repositories.setdefault(repo.id, repo)
    dist_id = int(dist.id) if dist is not None else None
    for repo_id in [int(rid) for rid in repo_ids] if repo_ids else [None]:
        index_rows.append((int(pkg.id), dist_id, repo_id))
