"""Re-binding a reissued My Number Card (issue 9 item 1): a re-bind proves it is the
same person — the four basic items of the new signing certificate match what was
proven at enrolment, compared through an HMAC whose key never leaves the HSM —
never re-binds a holder of a global role, and ends every token of the person."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers_auth import (
    audit_codes,
    bearer,
    enrolled_employee,
    invite,
    login,
    move_clock,
    new_card,
    new_corporation,
    problem,
    try_enrol,
    try_login,
)
from sqlalchemy import select

from app.people.models import AccessToken, Person, Role, RoleAssignment
from devpki.cards import issue_my_number_card

NAME = "山田\u3000太郎"
# What new_card puts on the genuine card.
GENUINE = {"birth_date": "419900115", "sex": "1", "address": "東京都千代田区霞が関一丁目1番1号"}


def card_with(pki, **changes: str):
    """A card for ``NAME`` whose items are the genuine ones except ``changes``."""
    items = {**GENUINE, **changes}
    return issue_my_number_card(
        pki,
        name=NAME,
        birth_date=items["birth_date"],
        sex=items["sex"],
        address=items["address"],
        prefecture="大阪府",
        city="大阪市北区",
    )


def rebind_invitation(client, corp, person_id: str) -> str:
    rep = login(client, corp.representative)
    invitation = invite(client, rep, corp.corporate_number, person_id=person_id)
    assert invitation["rebind"] is True
    return invitation["code"]


@pytest.mark.parametrize(
    "changes",
    [
        {"birth_date": "319851103", "sex": "2", "address": "大阪府大阪市北区梅田一丁目2番3号"},
        {"birth_date": "419900116"},
        {"sex": "2"},
        {"address": "東京都千代田区霞が関一丁目1番2号"},
    ],
    ids=["all-three", "birth-date", "sex", "address"],
)
def test_a_same_name_card_with_other_items_cannot_take_over_an_enrolment(client, app, pki, changes):
    corp = new_corporation(pki)
    card, person_id, victim_token = enrolled_employee(client, pki, corp)
    code = rebind_invitation(client, corp, person_id)
    impostor = card_with(pki, **changes)
    body = problem(try_enrol(client, code, impostor), 403, "REBIND_IDENTITY_MISMATCH")
    text = json.dumps(body, ensure_ascii=False)
    for value in (*changes.values(), *GENUINE.values()):
        assert len(value) == 1 or value not in text  # the refusal names no personal data
    assert ("enrolment:person:refused", "REBIND_IDENTITY_MISMATCH") in audit_codes(app)
    # Nothing changed: the real person keeps their token and logs in; the impostor cannot.
    assert client.get("/api/v1/me", headers=bearer(victim_token)).status_code == 200
    me = client.get("/api/v1/me", headers=bearer(login(client, card.authentication)))
    assert me.get_json()["caller"]["id"] == person_id
    problem(try_login(client, impostor.authentication), 403, "CERTIFICATE_NOT_ENROLLED")


def test_a_genuine_reissued_card_rebinds_and_ends_every_old_token(client, app, pki):
    corp = new_corporation(pki)
    card, person_id, first = enrolled_employee(client, pki, corp)
    second = login(client, card.authentication)
    code = rebind_invitation(client, corp, person_id)
    reissued = new_card(pki)  # same four items, new certificates and keys
    response = try_enrol(client, code, reissued)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["rebound"] is True
    for old in (first, second):
        problem(client.get("/api/v1/me", headers=bearer(old)), 401, "TOKEN_INVALID")
    with app.extensions["dairi"].session_factory() as session:
        tokens = session.scalars(select(AccessToken).where(AccessToken.person_id == person_id))
        assert all(t.revoked_at is not None for t in tokens)
    token = login(client, reissued.authentication)
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()["caller"]
    assert me["id"] == person_id and me["employee_of"] == [corp.corporate_number]
    problem(try_login(client, card.authentication), 403, "CERTIFICATE_NOT_ENROLLED")
    assert "enrolment:person:rebound" in [tag for tag, _ in audit_codes(app)]


def test_a_moved_person_rebinds_with_the_surviving_authentication_certificate(client, app, pki):
    """The authentication certificate survives a move; the signing certificate is
    revoked (affiliationChanged) and reissued with the new address. Proving the
    enrolled authentication key is proof of continuity, so the new items are taken."""
    corp = new_corporation(pki)
    card, person_id, _ = enrolled_employee(client, pki, corp)
    pki.ca_for_slug("jpki-sign").revoke(
        card.signing.certificate.serial_number,
        x509.ReasonFlags.affiliation_changed,
        now=pki.clock(),
    )
    move_clock(app, timedelta(minutes=6))
    problem(try_login(client, card.authentication), 403, "REENROLL_REQUIRED")
    code = rebind_invitation(client, corp, person_id)
    moved = card_with(pki, address="大阪府大阪市北区梅田一丁目2番3号")
    response = try_enrol(client, code, card, signing=moved.signing)
    assert response.status_code == 201, response.get_json()
    assert (
        client.get("/api/v1/me", headers=bearer(login(client, card.authentication))).get_json()[
            "caller"
        ]["id"]
        == person_id
    )
    # From now on the moved address is what a reissued card must match.
    code = rebind_invitation(client, corp, person_id)
    problem(try_enrol(client, code, new_card(pki)), 403, "REBIND_IDENTITY_MISMATCH")
    code = rebind_invitation(client, corp, person_id)
    reissued = card_with(pki, address="大阪府大阪市北区梅田一丁目2番3号")
    assert try_enrol(client, code, reissued).status_code == 201


def _grant(app, person_id: str, role: Role) -> None:
    with app.extensions["dairi"].session_factory() as session, session.begin():
        session.add(RoleAssignment(person_id=person_id, role=role.value, granted_by="test"))


def test_a_holder_of_a_global_role_is_never_rebound_through_an_invitation(client, app, pki):
    corp = new_corporation(pki)
    _, admin_id, admin_token = enrolled_employee(client, pki, corp, "管理\u3000者")
    _grant(app, admin_id, Role.ADMINISTRATOR)
    rep = login(client, corp.representative)
    response = client.post(
        f"/api/v1/corporations/{corp.corporate_number}/invitations",
        json={"person_id": admin_id},
        headers=bearer(rep),
    )
    problem(response, 403, "REBIND_NOT_PERMITTED")
    assert ("enrolment:invitation:refused", "REBIND_NOT_PERMITTED") in audit_codes(app)
    # A role granted after the invitation was issued is caught when it is redeemed,
    # even with a card that carries the same four items.
    _, auditor_id, _ = enrolled_employee(client, pki, corp)
    code = rebind_invitation(client, corp, auditor_id)
    _grant(app, auditor_id, Role.AUDITOR)
    problem(try_enrol(client, code, new_card(pki)), 403, "REBIND_NOT_PERMITTED")
    assert ("enrolment:person:refused", "REBIND_NOT_PERMITTED") in audit_codes(app)
    me = client.get("/api/v1/me", headers=bearer(admin_token)).get_json()["caller"]
    assert me["roles"] == ["administrator", "employee"]


def test_a_legacy_enrolment_without_a_digest_is_checked_against_its_stored_certificate(
    client, app, pki
):
    """Rows enrolled before migration 0005 hold the signing certificate and no digest:
    the digest is computed from it when first needed (here: a re-bind), and the
    certificate is then dropped."""
    corp = new_corporation(pki)
    card, person_id, _ = enrolled_employee(client, pki, corp)
    with app.extensions["dairi"].session_factory() as session, session.begin():
        person = session.get(Person, person_id)
        person.identity_digest = person.identity_key_id = None
        person.signing_certificate_der = card.signing.certificate.public_bytes(
            serialization.Encoding.DER
        )
    code = rebind_invitation(client, corp, person_id)
    problem(try_enrol(client, code, card_with(pki, sex="2")), 403, "REBIND_IDENTITY_MISMATCH")
    code = rebind_invitation(client, corp, person_id)
    reissued = new_card(pki)
    assert try_enrol(client, code, reissued).status_code == 201
    with app.extensions["dairi"].session_factory() as session:
        person = session.get(Person, person_id)
        assert person.identity_digest and person.signing_certificate_der is None


def test_a_legacy_enrolment_is_upgraded_at_login(client, app, pki):
    corp = new_corporation(pki)
    card, person_id, _ = enrolled_employee(client, pki, corp)
    with app.extensions["dairi"].session_factory() as session, session.begin():
        person = session.get(Person, person_id)
        digest = person.identity_digest
        person.identity_digest = person.identity_key_id = None
        person.signing_certificate_status_ref = None
        person.signing_certificate_der = card.signing.certificate.public_bytes(
            serialization.Encoding.DER
        )
    login(client, card.authentication)
    with app.extensions["dairi"].session_factory() as session:
        person = session.get(Person, person_id)
        assert person.identity_digest == digest
        assert person.signing_certificate_der is None
        assert person.signing_certificate_status_ref is not None
