"""AuditLog.append_many: several events in one head read and one insert, on the same hash
chain as AuditLog.append."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from app.audit_trail.log import AuditLog
from app.audit_trail.models import AuditHead, AuditRecord
from app.database import make_engine, make_session_factory
from app.migrate import migrate
from audit import AuditChainBroken

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_a_batch_of_events_joins_the_chain_between_single_ones(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine, clock=lambda: AT)() as session:
            log = AuditLog(session)
            first = log.append("test:one", actor="person:p1", details={"n": 0})
            batch = log.append_many(
                "test:many",
                actor="person:p1",
                subject="s1",
                principal="1234567890123",
                details=[{"index": i, "hash": f"{i:064x}"} for i in range(3)],
            )
            assert log.append_many("test:many", actor="person:p1", details=[]) == []
            session.commit()
            with make_session_factory(engine)() as other:  # the stored head, not the loaded
                head = other.scalars(select(AuditHead)).one()
                assert (head.sequence, head.hash) == (batch[-1].sequence, batch[-1].digest())
            last = log.append("test:one", actor="person:p1", details={"n": 4})
            session.commit()

            # One chain, contiguous, each event hashed over its predecessor.
            assert [e.sequence for e in batch] == [first.sequence + n for n in (1, 2, 3)]
            assert batch[0].previous_hash == first.digest()
            assert batch[1].previous_hash == batch[0].digest()
            assert last.sequence == batch[-1].sequence + 1
            assert last.previous_hash == batch[-1].digest()
            head = session.scalars(select(AuditHead)).one()
            assert (head.sequence, head.hash) == (last.sequence, last.digest())
            assert log.verify() == last.digest()
            rows = session.scalars(select(AuditRecord).where(AuditRecord.tag == "test:many")).all()
            assert [json.loads(r.details)["index"] for r in rows] == [0, 1, 2]
            assert {(r.subject, r.principal, r.actor) for r in rows} == {
                ("s1", "1234567890123", "person:p1")
            }
            assert [r.hash for r in rows] == [e.digest() for e in batch]

            # Editing one event of the batch breaks the chain there.
            session.execute(
                update(AuditRecord)
                .where(AuditRecord.sequence == batch[1].sequence)
                .values(details=json.dumps({"hash": "0" * 64, "index": 1}))
            )
            session.commit()
            with pytest.raises(AuditChainBroken) as broken:
                log.verify()
            assert broken.value.sequence == batch[1].sequence
    finally:
        engine.dispose()
