"""The audit log under concurrent writers, through the real served process.

Refused requests are each recorded in a transaction of their own (the first of a
kind in a window as an event, repeats as a count folded in later); two gunicorn
workers answering at once must still append one chain whose counts add up to the
refusals, with no 5xx — on SQLite (whole-transaction write lock) as on PostgreSQL
(row lock).
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from live_server import LiveServer
from sqlalchemy import select

from app.audit_trail.checkpoints import take_checkpoint, trust_for, verify_database
from app.audit_trail.log import AuditLog, fold_refusals
from app.audit_trail.models import AuditRecord
from app.database import make_engine, make_session_factory

REQUESTS = 240


def _refused(url: str, n: int) -> int:
    # Each request carries a different unknown token: a distinct refusal, audited.
    response = requests.get(
        url + "/api/v1/me", headers={"Authorization": f"Bearer dairi_at_unknown{n}"}, timeout=30
    )
    return response.status_code


def test_concurrent_refusals_are_each_audited_in_one_intact_chain(app, app_settings, pki):
    with LiveServer(app_settings, workers=2) as server:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda n: _refused(server.url, n), range(REQUESTS)))
        log = server.log()
    assert [s for s in statuses if s >= 500] == [], log[-3000:]
    # Past refused_auth_rate_per_minute (60) an address's refusals are 429s.
    assert set(statuses) == {401, 429}

    engine = make_engine(app_settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            # Repeats of a refusal are counted and folded into the chain when their
            # window ends; fold the windows still open now, as an export would.
            with session.begin():
                fold_refusals(session, open_windows=True)
            AuditLog(session).verify()  # raises on a broken chain
            rows = session.scalars(
                select(AuditRecord).where(AuditRecord.tag == "auth:access:refused")
            ).all()
            sequences = [
                r.sequence
                for r in session.scalars(select(AuditRecord).order_by(AuditRecord.sequence))
            ]
    finally:
        engine.dispose()
    # A refusal may be folded into an earlier one with a count (same source, same code).
    counted = Counter()
    for row in rows:
        details = json.loads(row.details)
        counted[details["code"]] += int(details.get("count", 1))
    assert counted == {"TOKEN_INVALID": statuses.count(401), "RATE_LIMITED": statuses.count(429)}
    assert len(rows) <= 8  # first and folded event per code, a window boundary at most
    assert sequences == list(range(1, len(sequences) + 1))
    # The same chain, signed at its head, holds for the verifier an auditor uses.
    context = app.extensions["dairi"]
    assert take_checkpoint(context).sequence == len(sequences)
    report = verify_database(context.session_factory, trust_for(context))
    assert report.intact, report.as_dict()
    assert (report.events, report.last_checkpoint) == (len(sequences), len(sequences))
