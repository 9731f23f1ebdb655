"""The audit log in the database: appending hash-chained events (DESIGN §8).

An event is written in the caller's transaction, so it lands with the state
change it records or not at all. A refusal has no state change to ride on:
:meth:`AuditLog.record_refusal` writes it in a transaction of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from app.db import Base, UtcDateTime, session_clock
from audit import AuditEvent, verify_chain


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
        return AuditEvent(self.sequence, self.occurred_at, self.actor, self.tag, self.subject,
                          self.principal, json.loads(self.details), self.previous_hash)


class AuditHead(Base):
    """The chain head, one row: appenders lock it, so one writer appends at a time."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditLog:
    """Appends events to the chain; never logs personal data (callers pass none)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, tag: str, *, actor: str, subject: str | None = None,
               principal: str | None = None, details: Mapping[str, Any] | None = None,
               at: datetime | None = None) -> AuditEvent:
        """Add one event in the session's transaction (the caller commits).

        The head row (made by the migrations) is locked first: on PostgreSQL by
        the row lock, on SQLite by the transaction's ``BEGIN IMMEDIATE``
        (:func:`app.db.make_engine`), so one writer appends at a time. The time is
        ``at`` or the session's clock.
        """
        head = self.session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one()
        when = at or session_clock(self.session)()
        event = AuditEvent(head.sequence + 1, when, actor, tag, subject,
                           principal, dict(details or {}), head.hash)
        digest = event.digest()
        self.session.add(AuditRecord(
            sequence=event.sequence, occurred_at=event.occurred_at, actor=actor, tag=tag,
            subject=subject, principal=principal,
            details=json.dumps(event.details, ensure_ascii=False, sort_keys=True),
            previous_hash=event.previous_hash, hash=digest,
        ))
        head.sequence, head.hash = event.sequence, digest
        self.session.flush()
        return event

    def events(self, after: int = 0) -> Iterator[AuditRecord]:
        yield from self.session.scalars(
            select(AuditRecord).where(AuditRecord.sequence > after).order_by(AuditRecord.sequence))

    def verify(self) -> str:
        """The head hash, if every stored event hashes to itself; raises AuditChainBroken."""
        return verify_chain((r.event(), r.hash) for r in self.events())


def record_refusal(session_factory: sessionmaker[Session], tag: str, *, actor: str, code: str,
                   subject: str | None = None, principal: str | None = None,
                   details: Mapping[str, Any] | None = None) -> None:
    """Write a refusal event in a transaction of its own (the refused one rolled back)."""
    with session_factory() as session, session.begin():
        AuditLog(session).append(tag, actor=actor, subject=subject, principal=principal,
                                 details={"code": code, **dict(details or {})})
