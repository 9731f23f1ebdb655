"""Audit: the hash-chained event log, signed checkpoints and the offline verifier.
A plain library (no web, no database)."""

from audit.chain import GENESIS_HASH, AuditChainBroken, AuditEvent, verify_chain
from audit.checkpoint import (
    CHECKPOINT_KINDS,
    Checkpoint,
    CheckpointInvalid,
    CheckpointSigner,
    CheckpointStatement,
    Trust,
    take_checkpoint,
    verify_checkpoint,
)
from audit.export import ExportError, trust_from_directory, verify_export, write_export
from audit.verify import (
    BREAK_KINDS,
    Break,
    Link,
    StoredCheckpoint,
    VerificationReport,
    scan_chain,
    verify_log,
)

__all__ = [
    "BREAK_KINDS",
    "CHECKPOINT_KINDS",
    "GENESIS_HASH",
    "AuditChainBroken",
    "AuditEvent",
    "Break",
    "Checkpoint",
    "CheckpointInvalid",
    "CheckpointSigner",
    "CheckpointStatement",
    "ExportError",
    "Link",
    "StoredCheckpoint",
    "Trust",
    "VerificationReport",
    "scan_chain",
    "take_checkpoint",
    "trust_from_directory",
    "verify_chain",
    "verify_checkpoint",
    "verify_export",
    "verify_log",
    "write_export",
]
