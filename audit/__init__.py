"""Audit: the hash-chained event log, signed checkpoints and the offline verifier.
A plain library (no web, no database)."""

from audit.chain import GENESIS_HASH, AuditChainBroken, AuditEvent, verify_chain

__all__ = ["GENESIS_HASH", "AuditChainBroken", "AuditEvent", "verify_chain"]
