"""Loopback ports for child processes (servers the tests and `make up` start)."""

from __future__ import annotations

import random
import socket

# Below Linux's ephemeral range (32768-60999): a port picked there by binding port 0 can be
# taken by any process's outgoing connection before the child binds it ("Address already in
# use" under load). Random, so parallel runs on one machine rarely meet; remembered, so one
# process never hands the same port out twice.
_LOW, _HIGH = 20000, 32000
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago and that this process has not handed out."""
    for _ in range(500):
        port = random.randrange(_LOW, _HIGH)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port between {_LOW} and {_HIGH}")
