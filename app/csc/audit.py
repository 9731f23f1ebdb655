"""Several audit events appended at once (one per signature of a ``signHash`` batch).

The same chain as :meth:`app.audit_trail.log.AuditLog.append` — the head row locked,
each event hashed over its predecessor — but the head is read and written once and
the records are inserted in one statement: a batch of 20 cost 20 head reads and 20
flushes otherwise. Candidate for ``AuditLog.append_many``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.audit_trail.models import AuditHead, AuditRecord
from app.database import session_clock
from audit import AuditEvent


def append_events(
    session: Session,
    tag: str,
    *,
    actor: str,
    subject: str | None,
    principal: str | None,
    details: Sequence[Mapping[str, Any]],
) -> list[AuditEvent]:
    """Append one event per ``details`` entry, in order, in the session's transaction."""
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    when = session_clock(session)()
    sequence, previous = head.sequence, head.hash
    events: list[AuditEvent] = []
    rows: list[dict[str, Any]] = []
    for each in details:
        sequence += 1
        event = AuditEvent(sequence, when, actor, tag, subject, principal, dict(each), previous)
        previous = event.digest()
        rows.append(
            {
                "sequence": event.sequence,
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
    if rows:  # one executemany, not an ORM flush per record
        session.execute(insert(AuditRecord), rows)
    head.sequence, head.hash = sequence, previous
    session.flush()
    return events
