"""A private PostgreSQL cluster run from the local server binaries.

Used by `make run` (the embedded default database, data kept under `.clair/`) and by the test
fixtures (a throwaway cluster in a temporary directory). Layout of the managed directory::

    <data_dir>/pgdata/        the cluster (PGDATA), owned by the server account
    <data_dir>/postgres.log   server output, appended on every start
    <data_dir>/owner.pid      pid of the process that started the running server
    <data_dir>/sock/          unix socket directory (a short temp dir when this path is too long)
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from clair_dev.ports import free_port

SUPERUSER = "clair"
# Durability traded for speed: fine for throwaway test clusters, never for data that should live.
FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes including ".s.PGSQL.<port>.lock"
_PACKAGE_HINT = "install the Debian package `postgresql` (apt-get install postgresql)"
# Data directories served by servers started from this process.
_RUNNING_HERE: dict[Path, subprocess.Popen[bytes]] = {}


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be created, started or stopped."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in Path(path).parts if part.isdigit())


def _bindir_candidates() -> list[Path]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates = [Path(path) for path in found]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        )
        candidates.append(Path(result.stdout.strip()))
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path:
        candidates.append(Path(initdb_on_path).resolve().parent)
    return candidates


def server_major_version(bindir: Path) -> int:
    """Major version of the `postgres` binary in `bindir` (e.g. 15)."""
    output = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\)\s+(\d+)", output)
    if not match:
        raise EmbeddedPostgresError(f"cannot parse PostgreSQL version from {output!r}")
    return int(match.group(1))


def find_pg_bindir(major: int | None = None) -> Path:
    """Directory holding initdb and postgres, newest version first (or exactly `major`)."""
    for bindir in _bindir_candidates():
        if not all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "postgres")):
            continue
        if major is None or server_major_version(bindir) == major:
            return bindir
    wanted = "PostgreSQL server binaries" + (f" version {major}" if major else "")
    raise EmbeddedPostgresError(f"{wanted} (initdb, postgres) not found: {_PACKAGE_HINT}")


@dataclass(frozen=True)
class _Account:
    """The unprivileged account the server runs as when we are root."""

    name: str
    uid: int
    gid: int


def _server_account() -> _Account | None:
    if os.geteuid() != 0:
        return None  # PostgreSQL runs as whoever we are.
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _Account(name, entry.pw_uid, entry.pw_gid)
    raise EmbeddedPostgresError("running as root and neither `postgres` nor `nobody` exists")


def _can_traverse(path: Path, account: _Account) -> bool:
    info = path.stat()
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == account.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _chown_tree(root: Path, account: _Account) -> None:
    os.chown(root, account.uid, account.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), account.uid, account.gid)


def _pid_state(pid: int) -> str:
    """ "gone", "zombie" (exited, not yet reaped by its parent) or "alive"."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "alive"
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return "zombie" if state == "Z" else "alive"
    return "alive"


def _pid_alive(pid: int) -> bool:
    return _pid_state(pid) == "alive"


def _serves_pgdata(pid: int, pgdata: Path) -> bool:
    """Whether `pid` is a postmaster started on `pgdata` (assumed so where /proc is missing)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return os.fsencode(pgdata) in argv


def _signal_until_gone(pid: int, timeout: float) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL, for a non-child pid."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.02)


def _stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
            return


def _shutdown(
    process: subprocess.Popen[bytes],
    pgdata: Path,
    owner_file: Path,
    temp_socket_dir: Path | None,
    timeout: float,
) -> None:
    """Stop the server and tidy up; also the weakref finalizer, so it must not reference self."""
    _stop_process(process, timeout)
    if _RUNNING_HERE.get(pgdata) is process:
        del _RUNNING_HERE[pgdata]
    owner_file.unlink(missing_ok=True)
    if temp_socket_dir is not None:
        shutil.rmtree(temp_socket_dir, ignore_errors=True)


class EmbeddedPostgres:
    """One PostgreSQL server on 127.0.0.1, initialized on first start, reusable across restarts."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        fast: bool = False,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        bindir: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self.fast = fast
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._settings = dict(settings or {})
        self._bindir = bindir
        self._account = _server_account()
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._port: int | None = None
        self._socket_dir: Path | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedPostgresError("server not started")
        return self._port

    @property
    def pid(self) -> int:
        if self._process is None:
            raise EmbeddedPostgresError("server not started")
        return self._process.pid

    @property
    def dsn(self) -> str:
        """TCP DSN of the `postgres` maintenance database."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @property
    def socket_dsn(self) -> str:
        """Same server through its unix socket."""
        if self._socket_dir is None:
            raise EmbeddedPostgresError("server not started")
        host = quote(str(self._socket_dir), safe="")
        return f"postgresql://{SUPERUSER}@/postgres?host={host}&port={self.port}"

    def start(self) -> str:
        """Initialize the cluster if needed, start it, wait until it accepts connections."""
        if self.running:
            return self.dsn
        self._prepare_directories()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._clear_stale_server()
        attempts = 5
        for attempt in range(1, attempts + 1):
            try:
                self._launch_and_wait()
                return self.dsn
            except EmbeddedPostgresError as error:
                if attempt == attempts or not self._retryable(str(error)):
                    raise
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Fast shutdown; waits for the server to exit. Safe to call more than once."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._process = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            version_file = self.pgdata / "PG_VERSION"
            major = int(version_file.read_text().strip()) if version_file.exists() else None
            self._bindir = find_pg_bindir(major)
        return self._bindir

    def _run_kwargs(self) -> dict[str, Any]:
        # Drop PG* variables of the caller's environment: they would steer initdb/postgres.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"env": env, "cwd": self.pgdata, "stdin": subprocess.DEVNULL}
        if self._account is not None:
            kwargs.update(user=self._account.uid, group=self._account.gid, extra_groups=[])
            env.update(HOME=str(self.pgdata), USER=self._account.name, LOGNAME=self._account.name)
        return kwargs

    def _prepare_directories(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        account = self._account
        if account is None:
            return
        if self.data_dir.stat().st_uid == os.geteuid() and not _can_traverse(
            self.data_dir, account
        ):
            # e.g. a 0700 mkdtemp directory: let the server account pass through it.
            self.data_dir.chmod(self.data_dir.stat().st_mode | stat.S_IXOTH)
        blocked = [
            p for p in (self.data_dir, *self.data_dir.parents) if not _can_traverse(p, account)
        ]
        if blocked:
            raise EmbeddedPostgresError(
                f"the server account {account.name!r} cannot traverse {blocked[0]}; "
                "choose a data directory whose parents are world-executable (e.g. under /tmp)"
            )
        if self.pgdata.stat().st_uid != account.uid:
            _chown_tree(self.pgdata, account)

    def _initdb(self) -> None:
        command = [str(self.bindir / "initdb"), "-D", str(self.pgdata), "-A", "trust"]
        command += ["-U", SUPERUSER, "--encoding=UTF8", "--locale=C"]
        if self.fast:
            command.append("--no-sync")
        result = subprocess.run(command, capture_output=True, check=False, **self._run_kwargs())
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise EmbeddedPostgresError(f"initdb failed in {self.pgdata}:\n{_tail(output)}")

    def _clear_stale_server(self) -> None:
        """Deal with a postmaster.pid left by a run that was killed before it stopped us."""
        other = _RUNNING_HERE.get(self.pgdata)
        if other is not None and _still_running(other):
            raise EmbeddedPostgresError(f"{self.pgdata} is already served from this process")
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            return
        state = _pid_state(pid)
        if state == "zombie":
            pid_file.unlink(missing_ok=True)  # dead, but postgres would take it for alive
        if state != "alive":
            return  # postgres itself discards a dead server's lock file (checking its memory)
        if not _serves_pgdata(pid, self.pgdata):
            pid_file.unlink(missing_ok=True)  # the pid was reused by an unrelated process
            return
        owner = _read_int(self.data_dir / "owner.pid")
        if owner is not None and owner != os.getpid() and _pid_alive(owner):
            raise EmbeddedPostgresError(
                f"{self.pgdata} is in use by postgres pid {pid}, started by live process {owner}"
            )
        # An orphan of a killed run: stop it so we own the server we talk to.
        _signal_until_gone(pid, timeout=30.0)

    def _socket_directory(self, port: int) -> tuple[Path, bool]:
        preferred = self.data_dir / "sock"
        if len(f"{preferred}/.s.PGSQL.{port}.lock") <= _MAX_SOCKET_PATH:
            preferred.mkdir(mode=0o700, exist_ok=True)
            directory, temporary = preferred, False
        else:
            directory, temporary = Path(tempfile.mkdtemp(prefix="clair-pg-")), True
        if self._account is not None:
            os.chown(directory, self._account.uid, self._account.gid)
        return directory, temporary

    def _launch_and_wait(self) -> None:
        port = self._requested_port or free_port()
        socket_dir, temporary = self._socket_directory(port)
        settings = {**(FAST_SETTINGS if self.fast else {}), **self._settings}
        command = [str(self.bindir / "postgres"), "-D", str(self.pgdata), "-p", str(port)]
        command += ["-c", "listen_addresses=127.0.0.1", "-k", str(socket_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with self.log_file.open("ab") as log:
            log_offset = log.tell()
            # A session of its own: a Ctrl-C meant for the owner must not also stop the database
            # the owner still needs while it shuts down.
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                **self._run_kwargs(),
            )  # fmt: skip
        owner_file = self.data_dir / "owner.pid"
        owner_file.write_text(f"{os.getpid()}\n")
        _RUNNING_HERE[self.pgdata] = process
        finalizer = weakref.finalize(
            self, _shutdown, process, self.pgdata, owner_file,
            socket_dir if temporary else None, 30.0,
        )  # fmt: skip
        try:
            self._wait_ready(process, log_offset)
        except BaseException:
            finalizer()
            raise
        self._process, self._finalizer = process, finalizer
        self._port, self._socket_dir = port, socket_dir

    def _wait_ready(self, process: subprocess.Popen[bytes], log_offset: int) -> None:
        # postgres writes "ready" as the 8th line of postmaster.pid once it accepts connections
        # (the same signal `pg_ctl -w` waits for).
        pid_file = self.pgdata / "postmaster.pid"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"postgres exited with {process.returncode}; log {self.log_file}:\n"
                    + self._log_tail(log_offset)
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().split("\n")
                if len(lines) > 7 and lines[0] == str(process.pid) and lines[7].strip() == "ready":
                    return
            time.sleep(0.01)
        raise EmbeddedPostgresError(
            f"postgres not ready after {self.startup_timeout:.0f}s; log {self.log_file}:\n"
            + self._log_tail(log_offset)
        )

    def _retryable(self, message: str) -> bool:
        # Only a port we picked ourselves may have been taken meanwhile; a chosen one stays taken.
        if "still in use" in message:
            return True
        return self._requested_port is None and "Address already in use" in message

    def _log_tail(self, offset: int) -> str:
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return _tail(log.read().decode(errors="replace"))


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _still_running(process: subprocess.Popen[bytes]) -> bool:
    """Also reaps a server of ours that just died, so postgres finds its pid gone."""
    try:
        process.wait(0.5)
    except subprocess.TimeoutExpired:
        return True
    return False


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def dsn_with_database(dsn: str, database: str) -> str:
    """The same URL DSN pointing at another database (query parameters kept)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


async def ensure_database(dsn: str, name: str) -> bool:
    """Create database `name` on the server of `dsn` unless it exists; True when created."""
    connection = await asyncpg.connect(dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await connection.execute(f"CREATE DATABASE {quote_ident(name)}")
        except asyncpg.DuplicateDatabaseError:
            return False  # created concurrently
        return True
    finally:
        await connection.close()


def ensure_database_sync(dsn: str, name: str) -> bool:
    """`ensure_database` for callers without a running event loop (uses a private loop)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(ensure_database(dsn, name))
    finally:
        loop.close()
