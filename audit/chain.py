"""The hash chain of audit events (DESIGN §8).

Each event's hash is SHA-256 over its RFC 8785 canonical JSON, which includes
the previous event's hash; editing, inserting, deleting or reordering an event
breaks every hash after it. Details must never carry personal data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import rfc8785

from dairi import DairiError

GENESIS_HASH = "0" * 64


class AuditChainBroken(DairiError):
    """The event sequence does not hash to itself (an edit, gap, insertion or reorder)."""

    code = "AUDIT_CHAIN_BROKEN"

    def __init__(self, message: str, sequence: int) -> None:
        super().__init__(message)
        self.sequence = sequence


@dataclass(frozen=True)
class AuditEvent:
    """One event: ``tag`` is ``source:subject:action`` (e.g. ``auth:login:refused``)."""

    sequence: int
    occurred_at: datetime
    actor: str
    tag: str
    subject: str | None
    principal: str | None  # the corporation's 法人番号, when there is one
    details: Mapping[str, Any] = field(default_factory=dict)
    previous_hash: str = GENESIS_HASH

    def canonical(self) -> bytes:
        return rfc8785.dumps(
            {
                "sequence": self.sequence,
                "occurred_at": self.occurred_at.isoformat(timespec="microseconds"),
                "actor": self.actor,
                "tag": self.tag,
                "subject": self.subject,
                "principal": self.principal,
                "details": dict(self.details),
                "previous_hash": self.previous_hash,
            }
        )

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def verify_chain(
    events: Iterable[tuple[AuditEvent, str]],
    *,
    start_hash: str = GENESIS_HASH,
    start_sequence: int = 1,
) -> str:
    """Check (event, stored hash) pairs in order; returns the head hash.

    Raises :class:`AuditChainBroken` naming the first sequence that does not hold.
    """
    previous, expected = start_hash, start_sequence
    for event, stored in events:
        if event.sequence != expected:
            raise AuditChainBroken(
                f"expected event {expected}, found {event.sequence}", event.sequence
            )
        if event.previous_hash != previous or event.digest() != stored:
            raise AuditChainBroken(
                f"event {event.sequence} does not match its hash", event.sequence
            )
        previous, expected = stored, expected + 1
    return previous
