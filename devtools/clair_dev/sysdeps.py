"""Check (and, as root with apt, install) the system tools the test suite needs.

Runs as ``python -m clair_dev.sysdeps`` and also as a plain script before the
virtualenv exists, so it imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

# sbin directories are often missing from a non-root PATH, yet nginx lives there.
_EXTRA_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class SystemTool:
    """One tool the tests need: all of `commands` must be found somewhere."""

    name: str
    commands: tuple[str, ...]
    # Debian packages that provide it, in order of preference; the first one apt knows wins.
    packages: tuple[str, ...]
    # Extra directories (glob patterns, newest-sorted last) to search besides PATH.
    search_globs: tuple[str, ...] = field(default=())


# Add new requirements here.
SYSTEM_TOOLS: tuple[SystemTool, ...] = (
    SystemTool(
        "PostgreSQL server",
        ("initdb", "pg_ctl", "postgres"),
        ("postgresql",),
        ("/usr/lib/postgresql/*/bin",),
    ),
    SystemTool("dpkg", ("dpkg", "dpkg-deb"), ("dpkg",)),
    SystemTool("rpm", ("rpm", "rpmbuild"), ("rpm",)),
    SystemTool("docker-registry", ("docker-registry",), ("docker-registry",)),
    SystemTool("nginx", ("nginx",), ("nginx-light", "nginx")),
    SystemTool("xz", ("xz",), ("xz-utils",)),
    SystemTool("bzip2", ("bzip2",), ("bzip2",)),
    # Writes real Berkeley DB rpm databases for the rpm reader's tests.
    SystemTool("Berkeley DB utilities", ("db5.3_load",), ("db5.3-util",)),
    # Load generator of the benchmarks under bench/.
    SystemTool("wrk", ("wrk",), ("wrk",)),
    # AMQP 0-9-1 and STOMP broker the notifier's deliverers are tested against.
    SystemTool("RabbitMQ", ("rabbitmq-server",), ("rabbitmq-server",)),
    # Builds real Go executables (modules, PE, Mach-O) for the Go binary scanner's tests.
    SystemTool("Go toolchain", ("go",), ("golang-go",)),
)


def _search_path(tool: SystemTool) -> list[str]:
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    dirs.extend(_EXTRA_DIRS)
    for pattern in tool.search_globs:
        # Newest version first, e.g. /usr/lib/postgresql/16/bin before .../15/bin.
        dirs.extend(sorted(glob.glob(pattern), key=_version_key, reverse=True))
    return dirs


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in path.split(os.sep) if part.isdigit())


def locate(tool: SystemTool) -> dict[str, str | None]:
    """Map each of the tool's commands to its full path, or None when missing."""
    search = os.pathsep.join(_search_path(tool))
    return {command: shutil.which(command, path=search) for command in tool.commands}


def missing_tools(tools: Sequence[SystemTool]) -> list[SystemTool]:
    return [tool for tool in tools if None in locate(tool).values()]


def _apt_knows(package: str) -> bool:
    """True when apt has an installation candidate for `package`."""
    try:
        result = subprocess.run(
            ["apt-cache", "policy", package], capture_output=True, text=True, check=False
        )
    except OSError:
        return False
    for line in result.stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            return value.strip() not in ("", "(none)")
    return False


def choose_packages(tools: Sequence[SystemTool], *, query_apt: bool) -> list[str]:
    """One package per tool: the first alternative apt can install (or simply the first)."""
    chosen: list[str] = []
    for tool in tools:
        package = tool.packages[0]
        if query_apt:
            package = next((p for p in tool.packages if _apt_knows(p)), package)
        if package not in chosen:
            chosen.append(package)
    return chosen


def install_command(packages: Sequence[str]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def _can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _report(tool: SystemTool, status: str) -> None:
    found = locate(tool)
    where = ", ".join(path or f"{command}: missing" for command, path in found.items())
    print(f"sysdeps: {status:<9} {tool.name:<18} {where}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check-only", action="store_true", help="never install, only report what is missing"
    )
    args = parser.parse_args(argv)

    missing = missing_tools(SYSTEM_TOOLS)
    for tool in SYSTEM_TOOLS:
        if tool not in missing:
            _report(tool, "found")
    if not missing:
        return 0

    if args.check_only or not _can_install():
        packages = choose_packages(missing, query_apt=False)
        for tool in missing:
            _report(tool, "MISSING")
        prefix = "" if os.geteuid() == 0 else "sudo "
        print(
            "sysdeps: install the missing tools with:\n"
            f"  {prefix}apt-get update && {prefix}env DEBIAN_FRONTEND=noninteractive "
            f"{shlex.join(install_command(packages))}",
            file=sys.stderr,
        )
        return 1

    return _install_missing(missing)


def _install_missing(missing: Sequence[SystemTool]) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # apt-cache only knows the alternatives reliably after an update.
    print("sysdeps: apt-get update", flush=True)
    if subprocess.run(["apt-get", "update", "-q"], env=env, check=False).returncode != 0:
        print("sysdeps: apt-get update failed", file=sys.stderr)
        return 1
    packages = choose_packages(missing, query_apt=True)
    command = install_command(packages)
    print(f"sysdeps: {shlex.join(command)}", flush=True)
    installed = subprocess.run(command, env=env, check=False).returncode == 0
    still_missing = missing_tools(missing)
    for tool in missing:
        _report(tool, "MISSING" if tool in still_missing else "installed")
    if not installed or still_missing:
        print("sysdeps: installation failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
