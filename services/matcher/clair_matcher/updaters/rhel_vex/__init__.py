"""Red Hat VEX (CSAF): the `rhel-vex` set and its one delta updater.

`_updater` fetches (archive, changes, deletions) into a spool (`_spool`) and parses it;
`_csaf` reads CSAF documents, `_records` turns them into records, `_rhcc` the container ones.
"""

from clair_matcher.updaters.rhel_vex._updater import (
    Fingerprint,
    RhelVexConfig,
    RhelVexFactory,
    RhelVexUpdater,
)

__all__ = ["Fingerprint", "RhelVexConfig", "RhelVexFactory", "RhelVexUpdater"]
