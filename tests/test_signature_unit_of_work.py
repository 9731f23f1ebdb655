"""A signature is recorded in the unit of work of whoever signs (issue 10 item 5):
SignatureService.sign_pdf does not commit, so a command that fails after signing
leaves no record of a signature nobody received."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

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
    with unit_of_work(context.session_factory) as session:
        SignatureService(session, context).sign_pdf(
            "署名 次郎", bid, PadesSpec(level=PadesLevel.B_B)
        )
    assert records(context) == 1
