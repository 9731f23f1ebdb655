"""The audit log in the database: appending hash-chained events (DESIGN §8).

An event is written in the caller's transaction, so it lands with the state
change it records or not at all. A refusal has no state change to ride on:
:func:`record_refusal` writes it in a transaction of its own.

Refusals are aggregated so that a flood cannot grow the log without bound
(issue 9.8): the first refusal of its kind (tag, actor, client address, code,
subject, principal) in a fixed window of :data:`REFUSAL_WINDOW_SECONDS` is an
event at once; identical ones later in the window only add to a counter row
(:class:`RefusalWindow`), and once the window has ended that count is folded
into the chain as one more event with ``details.count`` (and ``first_sequence``
pointing at the first). Appended events are never edited. So the refusals of
a kind are the sum of ``details.count`` (default 1) over its events, plus the
counts still waiting in ``audit_refusal_windows`` for their window to end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from app.audit_trail.models import AuditHead, AuditRecord, RefusalWindow
from app.database import session_clock
from app.http.ratelimit import Window, client_address, count_hit, key_part
from audit import AuditEvent, verify_chain

# Identical refusals within one window of this many seconds are one event plus a count.
REFUSAL_WINDOW_SECONDS = 60


class AuditLog:
    """Appends events to the chain; never logs personal data (callers pass none)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(
        self,
        tag: str,
        *,
        actor: str,
        subject: str | None = None,
        principal: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        """Add one event in the session's transaction (the caller commits).

        The head row (made by the migrations) is locked first: on PostgreSQL by
        the row lock, on SQLite by the transaction's ``BEGIN IMMEDIATE``
        (:func:`app.database.make_engine`), so one writer appends at a time. The time is
        ``at`` or the session's clock.
        """
        head = self.session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one()
        when = at or session_clock(self.session)()
        event = AuditEvent(
            head.sequence + 1, when, actor, tag, subject, principal, dict(details or {}), head.hash
        )
        digest = event.digest()
        self.session.add(
            AuditRecord(
                sequence=event.sequence,
                occurred_at=event.occurred_at,
                actor=actor,
                tag=tag,
                subject=subject,
                principal=principal,
                details=json.dumps(event.details, ensure_ascii=False, sort_keys=True),
                previous_hash=event.previous_hash,
                hash=digest,
            )
        )
        head.sequence, head.hash = event.sequence, digest
        self.session.flush()
        return event

    def append_many(
        self,
        tag: str,
        *,
        actor: str,
        subject: str | None = None,
        principal: str | None = None,
        details: Sequence[Mapping[str, Any]],
        at: datetime | None = None,
    ) -> list[AuditEvent]:
        """Add one event per ``details`` entry, in order, in the session's transaction
        (the caller commits): the same chain as :meth:`append` (the head locked, each
        event hashed over its predecessor, one time for all), but the head is read and
        written once and the records are inserted in one statement (Core statements: less
        work than :meth:`append`'s ORM flush, even for one event, as a CSC ``signHash``
        batch's). Nothing is written for no ``details``."""
        if not details:
            return []
        head = self.session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one()
        when = at or session_clock(self.session)()
        sequence, previous = head.sequence, head.hash
        events: list[AuditEvent] = []
        rows: list[dict[str, Any]] = []
        for each in details:
            sequence += 1
            event = AuditEvent(sequence, when, actor, tag, subject, principal, dict(each), previous)
            previous = event.digest()
            rows.append(
                {
                    "sequence": sequence,
                    "occurred_at": event.occurred_at,
                    "actor": actor,
                    "tag": tag,
                    "subject": subject,
                    "principal": principal,
                    "details": json.dumps(event.details, ensure_ascii=False, sort_keys=True),
                    "previous_hash": event.previous_hash,
                    "hash": previous,
                }
            )
            events.append(event)
        # Core statements on the tables: one executemany for the records, one UPDATE for
        # the head (the ORM's bulk path and a flush cost more than the hashing).
        self.session.execute(insert(AuditRecord.__table__), rows)
        self.session.execute(
            update(AuditHead.__table__)
            .where(AuditHead.__table__.c.id == 1)
            .values(sequence=sequence, hash=previous)
        )
        set_committed_value(head, "sequence", sequence)  # the loaded head, not dirty
        set_committed_value(head, "hash", previous)
        return events

    def events(self, after: int = 0) -> Iterator[AuditRecord]:
        yield from self.session.scalars(
            select(AuditRecord).where(AuditRecord.sequence > after).order_by(AuditRecord.sequence)
        )

    def verify(self) -> str:
        """The head hash, if every stored event hashes to itself; raises AuditChainBroken."""
        return verify_chain((r.event(), r.hash) for r in self.events())


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def append_refusal(
    session: Session,
    tag: str,
    *,
    actor: str,
    code: str,
    subject: str | None = None,
    principal: str | None = None,
    details: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> AuditEvent | None:
    """Record one refusal in the session's transaction (the caller commits).

    ``source`` is the client's address (by default the current request's). The
    first refusal of its kind in the current window is appended as an event,
    which is returned, and ended windows are folded (:func:`fold_refusals`);
    a repeat is only counted, and None is returned.
    """
    source = key_part(source if source is not None else client_address())
    now = session_clock(session)()
    window = Window.around(now, REFUSAL_WINDOW_SECONDS)
    kind = [tag, actor, source, code, subject, principal]
    digest = hashlib.sha256(json.dumps(kind, ensure_ascii=False).encode()).hexdigest()
    count = count_hit(
        session,
        RefusalWindow.__table__,
        {"kind_sha256": digest, "window_start": window.start},
        {
            "window_end": window.end,
            "tag": tag,
            "actor": actor,
            "source": source,
            "code": code,
            "subject": subject,
            "principal": principal,
        },
    )
    if count > 1:
        return None
    event = AuditLog(session).append(
        tag,
        actor=actor,
        subject=subject,
        principal=principal,
        details={"code": code, **dict(details or {}), "source": source},
    )
    session.execute(
        update(RefusalWindow)
        .where(RefusalWindow.kind_sha256 == digest, RefusalWindow.window_start == window.start)
        .values(first_sequence=event.sequence)
    )
    fold_refusals(session, now)
    return event


def fold_refusals(
    session: Session, now: datetime | None = None, *, open_windows: bool = False
) -> int:
    """Fold the counts of windows ended by ``now`` (default: the session's clock)
    into the chain, one event each with ``details.count``, and drop their rows, in
    the session's transaction (the caller commits). Returns the events appended.

    ``open_windows`` folds the current windows too (for an export or a shutdown
    that must not leave counts behind); a repeat arriving later in such a window
    then starts a new row and a new first event, so no refusal is lost or counted
    twice. Rows are taken in a fixed order under row locks, so concurrent folders
    neither fold a row twice nor deadlock.
    """
    now = now or session_clock(session)()
    query = (
        select(RefusalWindow)
        .order_by(RefusalWindow.window_start, RefusalWindow.kind_sha256)
        .with_for_update()
    )
    if not open_windows:
        query = query.where(RefusalWindow.window_end <= now.timestamp())
    log = AuditLog(session)
    appended = 0
    for row in session.scalars(query).all():
        if row.count > 1:
            log.append(
                row.tag,
                actor=row.actor,
                subject=row.subject,
                principal=row.principal,
                details={
                    "code": row.code,
                    "count": row.count - 1,
                    "source": row.source,
                    "first_sequence": row.first_sequence,
                    "window": {"start": _iso(row.window_start), "end": _iso(row.window_end)},
                },
            )
            appended += 1
        session.delete(row)
    session.flush()
    return appended


def record_refusal(
    session_factory: sessionmaker[Session],
    tag: str,
    *,
    actor: str,
    code: str,
    subject: str | None = None,
    principal: str | None = None,
    details: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> None:
    """Record a refusal (:func:`append_refusal`) in a transaction of its own: the
    refused one has rolled back, or never wrote."""
    with session_factory() as session, session.begin():
        append_refusal(
            session,
            tag,
            actor=actor,
            code=code,
            subject=subject,
            principal=principal,
            details=details,
            source=source,
        )
