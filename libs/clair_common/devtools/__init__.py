"""Developer tooling (system dependency checks and the like); not used by the services."""

from __future__ import annotations
