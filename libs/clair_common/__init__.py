"""Shared library of the Clair services: config, wire models, HTTP, database, versions."""

from __future__ import annotations

__version__ = "0.1.0"
