"""`clairctl export-updaters` / `import-updaters`: updates carried across an airgap.

The file is Clair's (claircore libvuln/jsonblob): newline-delimited JSON, one line per record,
the lines of one updater run sharing a `Ref`::

    {"Updater":..,"Fingerprint":..,"Date":..,"Ref":"<uuid>","Vuln":{<Vulnerability>},"Kind":"vulnerability"}
    {"Updater":..,"Fingerprint":..,"Date":..,"Ref":"<uuid>","Enrichment":{"Tags":[..],"Enrichment":{..}},"Kind":"enrichment"}

Export runs every enabled updater, enrichers (clair.cvss, clair.kev, clair.epss) included,
with no database (no previous fingerprint, so delta feeds give full snapshots) and spools
each run to its own temporary file: a run that fails leaves nothing in the output, whose
groups are imported as complete snapshots. Import streams the file (bounded memory): each
(ref, kind) group is skipped when an update operation of that updater and kind already has its
fingerprint, else stored through the normal ingest path.

One job per private module: `_jsonblob` (the file format), `_streams` (sources, outputs,
compression), `_progress` (the status line), `_export` (running the updaters), `_import`
(feeding each group to the matcher's store, which holds all of the import's SQL), `_cli` (the
clairctl subcommands).
"""

from __future__ import annotations

from clair_matcher.airgap._cli import register
from clair_matcher.airgap._errors import AirgapError
from clair_matcher.airgap._export import ExportReport, export_updaters
from clair_matcher.airgap._import import ImportReport, import_updaters
from clair_matcher.airgap._jsonblob import (
    GroupHead,
    UpdateFileReader,
    enrichment_lines,
    vulnerability_lines,
)
from clair_matcher.airgap._progress import Progress
from clair_matcher.airgap._streams import Compression, open_output, open_source

__all__ = [
    "AirgapError",
    "Compression",
    "ExportReport",
    "GroupHead",
    "ImportReport",
    "Progress",
    "UpdateFileReader",
    "enrichment_lines",
    "export_updaters",
    "import_updaters",
    "open_output",
    "open_source",
    "register",
    "vulnerability_lines",
]
