"""Child processes of the dev tools and test fixtures: stopping them, and running NGINX."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import subprocess

from clair_dev.sysdeps import SYSTEM_TOOLS, locate


def stop_process(
    proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, timeout: float = 15
) -> int:
    """Ask with `sig`, wait up to `timeout` seconds, then kill; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def nginx_user_args() -> list[str]:
    """deploy/nginx/render.py's `--user` for this process, when it is root.

    As root, nginx switches its workers to `user` (nobody by default), who could not reach a
    prefix under a 0700 directory; keep them as the current user instead.
    """
    if os.geteuid() != 0:
        return []
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return ["--user", f"{user} {group}"]


def find_nginx() -> str | None:
    """The nginx binary `make system-deps` installs (PATH, then /usr/sbin), if any."""
    tool = next(t for t in SYSTEM_TOOLS if t.name == "nginx")
    return locate(tool)["nginx"]
