"""`clairctl` commands for people and CI pipelines: report, manifest, sbom, delete.

Registry access, Clair's API, output formats and gating live in one module each; nothing here
imports a service.
"""
