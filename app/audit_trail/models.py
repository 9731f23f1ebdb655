"""Database rows of the audit log: the hash-chained events, the chain's head and the
refusal windows that aggregate identical refusals (see :mod:`app.audit_trail.log`)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UtcDateTime
from audit import AuditEvent, StoredCheckpoint


class AuditRecord(Base):
    """One event of the hash-chained audit log (see :mod:`audit.chain`)."""

    __tablename__ = "audit_events"

    sequence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    tag: Mapped[str] = mapped_column(String(100), index=True)
    subject: Mapped[str | None] = mapped_column(String(100), index=True)
    principal: Mapped[str | None] = mapped_column(String(13), index=True)
    details: Mapped[str] = mapped_column(Text)  # JSON
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def event(self) -> AuditEvent:
        return AuditEvent(
            self.sequence,
            self.occurred_at,
            self.actor,
            self.tag,
            self.subject,
            self.principal,
            json.loads(self.details),
            self.previous_hash,
        )


class AuditHead(Base):
    """The chain head, one row: appenders lock it, so one writer appends at a time."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class RefusalWindow(Base):
    """Identical refusals in one window: the first is already an event
    (``first_sequence``); ``count`` - 1 more are folded in when the window ends."""

    __tablename__ = "audit_refusal_windows"

    kind_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    window_end: Mapped[int] = mapped_column(BigInteger, index=True)
    tag: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(120))
    code: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(String(100))
    principal: Mapped[str | None] = mapped_column(String(13))
    first_sequence: Mapped[int | None] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)


class AuditCheckpoint(Base):
    """The chain's head at one time, signed by the audit key and time-stamped
    (:mod:`audit.checkpoint`); never updated or deleted."""

    __tablename__ = "audit_checkpoints"

    sequence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    statement: Mapped[bytes] = mapped_column(LargeBinary)  # canonical JSON, as signed
    signature_der: Mapped[bytes] = mapped_column(LargeBinary)  # detached CMS SignedData
    timestamp_der: Mapped[bytes | None] = mapped_column(LargeBinary)  # RFC 3161 token
    signer_certificate_der: Mapped[bytes] = mapped_column(LargeBinary)

    def stored(self) -> StoredCheckpoint:
        return StoredCheckpoint(
            self.sequence, self.statement, self.signature_der, self.timestamp_der
        )

    def as_dict(self) -> dict[str, object]:
        """What the auditor API lists (the DER blobs in base64)."""
        return {
            "sequence": self.sequence,
            "head_hash": self.head_hash,
            "taken_at": self.taken_at.isoformat(),
            "statement": self.statement.decode(),
            "signature": base64.b64encode(self.signature_der).decode(),
            "timestamp_token": (
                base64.b64encode(self.timestamp_der).decode() if self.timestamp_der else None
            ),
        }
