"""A signature is recorded in the unit of work of whoever signs (issue 10 item 5):
SignatureService.sign_pdf does not commit, so a command that fails after signing
leaves no record of a signature nobody received."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import func, select

from app.audit_trail.models import AuditRecord
from app.credentials.service import CredentialOwner, CredentialService
from app.signatures.models import SignatureRecord
from app.signatures.service import SignatureService
from app.unit_of_work import unit_of_work
from hsm import KeyAlgorithm
from signing import PadesLevel, PadesSpec


class Injected(RuntimeError):
    """The failure the test injects after the signature was made."""


@pytest.fixture
def owner(client, pki) -> CredentialOwner:
    from helpers_auth import enrolled_employee, new_corporation

    corp = new_corporation(pki, name="株式会社大理建設")
    _, person_id, _ = enrolled_employee(client, pki, corp, "署名\u3000次郎")
    return CredentialOwner(person_id, corp.corporate_number)


def records(context) -> int:
    with context.session_factory() as session:
        return session.scalar(select(func.count()).select_from(SignatureRecord)) or 0


def signature_events(context) -> list[tuple[str, str | None, dict]]:
    """The audit events of signatures: (tag, subject, details)."""
    with context.session_factory() as session:
        rows = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.tag.like("signature:%"))
            .order_by(AuditRecord.sequence)
        )
        return [(r.tag, r.subject, json.loads(r.details)) for r in rows]


def test_a_signing_command_that_fails_after_signing_records_nothing(app, hsm, bid, owner):
    context = app.extensions["dairi"]
    with unit_of_work(context.session_factory) as session:
        CredentialService(session, hsm, context.dev_pki).issue(
            "署名 次郎", KeyAlgorithm.RSA_2048, owner
        )
    with pytest.raises(Injected), unit_of_work(context.session_factory) as session:
        _, record = SignatureService(session, context).sign_pdf(
            "署名 次郎", bid, PadesSpec(level=PadesLevel.B_B)
        )
        assert record.id  # known before the unit of work ends
        raise Injected("writing the signed file failed")
    assert records(context) == 0
    assert signature_events(context) == []  # no event for a signature nobody received
    with unit_of_work(context.session_factory) as session:
        result, record = SignatureService(session, context).sign_pdf(
            "署名 次郎", bid, PadesSpec(level=PadesLevel.B_B)
        )
    assert records(context) == 1
    # The operator's signature is audited as made outside the policy gate, with what
    # a compliance officer needs to find the document: its digests before and after.
    [(tag, subject, details)] = signature_events(context)
    assert (tag, subject) == ("signature:operator:made", record.id)
    assert details["document_sha256"] == hashlib.sha256(bid).hexdigest()
    assert details["signed_document_sha256"] == hashlib.sha256(result.pdf).hexdigest()
    assert details["level"] == "B-B" and details["credential"] == "署名 次郎"
