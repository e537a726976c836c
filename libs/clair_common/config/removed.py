"""Keys earlier Clair releases accepted and later removed or renamed.

Config files outlive releases (Quay's documentation, the Quay operator and community charts
still write some of these), so each such key draws one warning naming what replaces it and is
then ignored, where any other unknown key stays an error.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["REMOVED_KEYS", "strip_removed_keys"]

REMOVED_KEYS: dict[tuple[str, ...], str] = {
    # Clair 4.0/4.1: the updater sets lived in the matcher's section.
    ("matcher", "updater_sets"): "updaters.sets",
    # Quay's documentation and early operator configs: a run interval before `period`.
    ("matcher", "run"): "matcher.period",
    # Clair 4.0's `metrics.dogstatsd`: removed with the exporter.
    ("metrics", "dogstatsd"): 'metrics.name "prometheus" or "otlp"',
    # The AMQP exchange's `durable`, renamed.
    ("notifier", "amqp", "exchange", "durable"): "notifier.amqp.exchange.durability",
    # Clair's config.yaml.sample still spells the STOMP login block `login`.
    ("notifier", "stomp", "login"): "notifier.stomp.user",
}


def strip_removed_keys(doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The document without removed keys, and one warning per key found."""
    result: dict[str, Any] = copy.deepcopy(dict(doc))
    warnings: list[str] = []
    for path, replacement in REMOVED_KEYS.items():
        node: Any = result
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            del node[path[-1]]
            warnings.append(
                f"{'.'.join(path)}: removed from Clair and ignored; use {replacement} instead"
            )
    return result, warnings
