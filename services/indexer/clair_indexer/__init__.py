"""The indexer service: fetch layers, scan them, coalesce an IndexReport."""
