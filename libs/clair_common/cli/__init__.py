"""Command-line entry points: `clair` and `clairctl`."""
