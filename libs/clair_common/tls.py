"""The one place outbound TLS trust is decided: the system store plus what Go would also trust.

Clair is a Go program, so operators hand it extra CAs the way Go reads them: `SSL_CERT_FILE`
names one PEM bundle, `SSL_CERT_DIR` a colon-separated list of directories whose every file is
read, whatever its name (Quay mounts its CA as `extra_ca_cert_*.cert`). OpenSSL, and so
Python's default context, looks up a directory only by subject-hash file names (`c_rehash`),
which such files never have. Every outbound client (layer fetches, feeds, webhooks, calls
between services, the database when it verifies without an `sslrootcert`) uses `client_context`.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp

from clair_common.dns import DaemonThreadResolver

__all__ = [
    "client_context",
    "client_session",
    "extra_ca_files",
    "new_client_context",
    "trusted_pem",
]

log = logging.getLogger("clair.tls")


def extra_ca_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """`SSL_CERT_FILE`, then every regular file in each `SSL_CERT_DIR` directory (sorted)."""
    env = os.environ if environ is None else environ
    files: list[Path] = []
    if env.get("SSL_CERT_FILE"):
        files.append(Path(env["SSL_CERT_FILE"]))
    for directory in env.get("SSL_CERT_DIR", "").split(":"):
        if not directory:
            continue
        try:
            entries = sorted(Path(directory).iterdir())
        except OSError:
            continue  # Go skips directories it cannot read.
        files.extend(entry for entry in entries if entry.is_file())
    return files


def _pem_certificates(path: Path) -> list[str]:
    """The certificate blocks of one PEM file; Go ignores what is not a certificate."""
    try:
        text = path.read_text(encoding="ascii", errors="ignore")
    except OSError:
        return []
    blocks = []
    for block in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body, end, _ = block.partition("-----END CERTIFICATE-----")
        if end:
            blocks.append(f"-----BEGIN CERTIFICATE-----{body}-----END CERTIFICATE-----\n")
    return blocks


def _build(files: tuple[Path, ...], cafile: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    # Each certificate once: SSL_CERT_DIR usually holds the SSL_CERT_FILE bundle and every
    # certificate of it again as its own file, and parsing is the whole cost (0.10 s -> 0.03 s
    # for Debian's store, paid by the first outbound request before it was built at start-up).
    seen: set[str] = set()
    for path in files:
        loaded = 0
        for pem in _pem_certificates(path):
            if pem in seen:
                continue
            seen.add(pem)
            try:
                context.load_verify_locations(cadata=pem)
            except ssl.SSLError:
                continue
            loaded += 1
        if loaded:
            log.debug("trusting CA certificates from %s", path)
    return context


@lru_cache(maxsize=8)
def _cached(files: tuple[Path, ...], cafile: str | None) -> ssl.SSLContext:
    return _build(files, cafile)


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """A shared verifying client context: system store, `SSL_CERT_FILE`, `SSL_CERT_DIR`, and
    `cafile`. Shared per environment (building one reads every CA file): do not change it."""
    return _cached(tuple(extra_ca_files()), cafile)


def new_client_context(cafile: str | None = None) -> ssl.SSLContext:
    """Like `client_context`, but a new object the caller may change (client certificates)."""
    return _build(tuple(extra_ca_files()), cafile)


def trusted_pem(cafile: str | None = None) -> bytes:
    """What `client_context(cafile)` trusts, as one PEM bundle, for clients that take their roots
    as bytes: gRPC's own default roots are a bundle of its own that ignores SSL_CERT_DIR."""
    ders = client_context(cafile).get_ca_certs(binary_form=True)
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in ders).encode("ascii")


def client_connector() -> aiohttp.TCPConnector:
    """Connections that trust what `client_context` trusts, with names resolved on threads
    that never hold up the process's exit (`clair_common.dns`)."""
    return aiohttp.TCPConnector(ssl=client_context(), resolver=DaemonThreadResolver())


def client_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session on `client_connector()`; keyword arguments (timeout, headers, ...)
    go to `aiohttp.ClientSession`."""
    return aiohttp.ClientSession(connector=client_connector(), **kwargs)
