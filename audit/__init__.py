"""Audit: the hash-chained event log, signed checkpoints and the offline verifier.
A plain library (no web, no database)."""
