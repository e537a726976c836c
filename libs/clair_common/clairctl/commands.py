"""`clairctl manifest|report|sbom|delete`: argument parsing and the per-image flow.

Exit codes: 0 fine, 1 an error (each named on stderr with what to do next), 2 bad usage,
3 `--fail-on`: a finding at or above the threshold remains after filters and VEX.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from clair_common.clairctl.admin import register_admin
from clair_common.clairctl.api import DEFAULT_HOST, DEFAULT_ISSUER, ClairClient, ClairError
from clair_common.clairctl.archive import ArchiveError
from clair_common.clairctl.credentials import CredentialError
from clair_common.clairctl.findings import ImageResult, severity_name
from clair_common.clairctl.formats import REPORT_FORMATS, SBOM_FORMATS, report_writer, sbom_writer
from clair_common.clairctl.gate import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    Gate,
    apply_gate,
    gate_fails,
)
from clair_common.clairctl.progress import Progress
from clair_common.clairctl.reference import ReferenceError
from clair_common.clairctl.registry import RegistryClient, RegistryError, parse_platform
from clair_common.clairctl.vex import VexError, load_vex
from clair_common.models import ModelError, parse_digest

_EXPECTED = (
    ClairError,
    RegistryError,
    CredentialError,
    ReferenceError,
    VexError,
    ModelError,
    ArchiveError,
)


def _fail(message: str) -> None:
    print(f"clairctl: {message}", file=sys.stderr)


def _psk(args: argparse.Namespace) -> bytes | None:
    """The PSK of the config named by --config (or CLAIR_CONF, or ./config.yaml if present)."""
    from clair_common.config import load_config

    path = getattr(args, "config", None) or os.environ.get("CLAIR_CONF")
    if path is None:
        if not Path("config.yaml").is_file():
            return None
        path = "config.yaml"
    cfg = load_config(path, os.environ)
    return cfg.auth.psk.key_bytes if cfg.auth.psk is not None else None


def _clair(args: argparse.Namespace) -> ClairClient:
    return ClairClient(args.host, psk=_psk(args), issuer=args.issuer)


def _registry(args: argparse.Namespace) -> RegistryClient:
    platform = parse_platform(args.platform) if args.platform else None
    return RegistryClient(insecure=args.insecure, platform=platform)


async def _collect(
    args: argparse.Namespace, *, vulnerabilities: bool, progress: Progress
) -> tuple[list[ImageResult], int]:
    """Index each image (and match it); returns the results and the number of failures."""
    from clair_common.clairctl.sources import image_sources

    results: list[ImageResult] = []
    failures = 0
    clair = _clair(args)
    registry = _registry(args)
    try:
        async with image_sources(args, registry) as sources:
            for name, manifest_of in sources:
                try:
                    progress.status(name, "resolving")
                    manifest = await manifest_of()
                    index = await clair.index(manifest, progress.indexer_state(name))
                    report = index
                    if vulnerabilities:
                        progress.status(name, "matching")
                        report = await clair.vulnerability_report(manifest.hash)
                    results.append(ImageResult(name, manifest.hash, index, report))
                except _EXPECTED as exc:
                    progress.clear()
                    _fail(f"{name}: {exc}")
                    failures += 1
    finally:
        progress.clear()
        await registry.close()
        await clair.close()
    return results, failures


def _gate(args: argparse.Namespace) -> Gate:
    severities = None
    if args.severity:
        severities = frozenset(severity_name(s) for s in args.severity.split(",") if s.strip())
    return Gate(
        severities=severities,
        ignore_unfixed=args.ignore_unfixed,
        fail_on=severity_name(args.fail_on) if args.fail_on else None,
        vex=[load_vex(Path(p)) for p in args.vex or ()],
        kev_only=args.kev_only,
        min_epss=_probability(args.min_epss),
    )


def _probability(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--min-epss {text!r}: expected a probability from 0 to 1, e.g. 0.1")
    return value


def _report(args: argparse.Namespace) -> int:
    try:
        gate = _gate(args)
    except (ValueError, VexError) as exc:
        _fail(str(exc))
        return EXIT_ERROR
    try:
        results, failures = asyncio.run(_collect(args, vulnerabilities=True, progress=Progress()))
    except _EXPECTED as exc:
        _fail(str(exc))
        return EXIT_ERROR
    for result in results:
        apply_gate(result, gate)
        if result.suppressed:
            print(f"{result.name}: {result.suppressed} findings suppressed by VEX", file=sys.stderr)
    if results:
        report_writer(args.output)(results, sys.stdout, sys.stdout.isatty() and not args.no_color)
        sys.stdout.flush()
    if failures:
        return EXIT_ERROR
    return EXIT_FINDINGS if gate_fails(results, gate.fail_on) else EXIT_OK


def _sbom(args: argparse.Namespace) -> int:
    try:
        results, failures = asyncio.run(_collect(args, vulnerabilities=False, progress=Progress()))
    except _EXPECTED as exc:
        _fail(str(exc))
        return EXIT_ERROR
    if results:
        sbom_writer(args.output)(results, sys.stdout, False)
        sys.stdout.flush()
    return EXIT_ERROR if failures else EXIT_OK


def _manifest(args: argparse.Namespace) -> int:
    async def run() -> int:
        from clair_common.clairctl.sources import image_sources

        failures = 0
        registry = _registry(args)
        try:
            async with image_sources(args, registry) as sources:
                for name, manifest_of in sources:
                    try:
                        manifest = await manifest_of()
                    except _EXPECTED as exc:
                        _fail(f"{name}: {exc}")
                        failures += 1
                        continue
                    sys.stdout.write(orjson.dumps(manifest.to_json()).decode() + "\n")
        finally:
            await registry.close()
        return EXIT_ERROR if failures else EXIT_OK

    try:
        return asyncio.run(run())
    except _EXPECTED as exc:
        _fail(str(exc))
        return EXIT_ERROR


def _delete(args: argparse.Namespace) -> int:
    try:
        digests = [parse_digest(d, "digest") for d in args.digests]
    except ModelError as exc:
        _fail(str(exc))
        return EXIT_ERROR

    async def run() -> list[str]:
        clair = _clair(args)
        try:
            return await clair.delete(digests)
        finally:
            await clair.close()

    try:
        deleted = asyncio.run(run())
    except ClairError as exc:
        _fail(str(exc))
        return EXIT_ERROR
    for digest in deleted:
        print(digest)
    return EXIT_OK


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=os.environ.get("CLAIR_API", DEFAULT_HOST),
        help=f"Clair's API base URL (env CLAIR_API; default {DEFAULT_HOST}, `make run`)",
    )
    parser.add_argument(
        "--issuer",
        "--iss",
        default=DEFAULT_ISSUER,
        help="JWT issuer for PSK-signed requests (the config's auth.psk.key signs them)",
    )


def _image_options(parser: argparse.ArgumentParser, *, archive: bool = True) -> None:
    parser.add_argument("images", nargs="*", metavar="REF", help="image references")
    parser.add_argument(
        "--insecure", action="store_true", help="plain HTTP and no TLS verification"
    )
    parser.add_argument("--platform", help="OS/ARCH[/VARIANT] in a multi-platform image")
    if archive:
        parser.add_argument(
            "--archive",
            action="append",
            metavar="FILE",
            help="a `docker save` tarball or an OCI layout directory, instead of a registry",
        )
        parser.add_argument(
            "--serve-addr",
            default="127.0.0.1:0",
            metavar="HOST:PORT",
            help="where archive layers are served to the indexer (default 127.0.0.1, any port)",
        )


def register(sub: Any) -> None:
    manifest = sub.add_parser("manifest", help="print Clair's manifest of each image")
    # No --archive: its layer URLs would die with the command that printed them.
    _image_options(manifest, archive=False)
    manifest.set_defaults(func=_manifest)

    report = sub.add_parser("report", help="index each image and print its vulnerabilities")
    _image_options(report)
    _api_options(report)
    report.add_argument("-o", "--output", "--out", choices=REPORT_FORMATS, default="table")
    report.add_argument(
        "--severity", metavar="LIST", help="show only these severities, e.g. Critical,High"
    )
    report.add_argument("--ignore-unfixed", action="store_true", help="hide findings with no fix")
    report.add_argument(
        "--kev-only",
        action="store_true",
        help="only findings in CISA's KEV catalog (needs the clair.kev enricher)",
    )
    report.add_argument(
        "--min-epss",
        metavar="P",
        help="only findings with an EPSS probability of at least P (needs clair.epss)",
    )
    report.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        help=f"exit {EXIT_FINDINGS} when a finding at or above SEVERITY remains",
    )
    report.add_argument(
        "--vex", action="append", metavar="FILE", help="OpenVEX or CycloneDX VEX document"
    )
    report.add_argument("--no-color", action="store_true", help="no colour even on a terminal")
    report.set_defaults(func=_report)

    sbom = sub.add_parser("sbom", help="index each image and print what was found as an SBOM")
    _image_options(sbom)
    _api_options(sbom)
    sbom.add_argument("-o", "--output", choices=SBOM_FORMATS, default="spdx")
    sbom.set_defaults(func=_sbom)

    delete = sub.add_parser("delete", help="delete the index reports of manifest digests")
    delete.add_argument("digests", nargs="+", metavar="DIGEST")
    _api_options(delete)
    delete.set_defaults(func=_delete)

    register_admin(sub)


def check_images(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if (
        getattr(args, "images", None) is not None
        and not args.images
        and not getattr(args, "archive", None)
    ):
        parser.error(f"{args.command}: name at least one image (or --archive FILE)")


__all__ = ["check_images", "register"]
