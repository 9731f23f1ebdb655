"""Signing credentials that belong to people, over the API (issue 11 item 1): issue with a
fresh proof by the JPKI signing certificate, list one's own and a corporation's, revoke;
and every refusal, each with its code, over HTTP."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from helpers_auth import (
    audit_codes,
    bearer,
    enrolled_employee,
    login,
    move_clock,
    new_card,
    new_corporation,
    open_challenge,
    problem,
    proof,
)
from pkcs11 import Attribute, ObjectClass
from sqlalchemy import event

from app.credentials.models import Credential, CredentialStatus
from app.credentials.service import CredentialError
from app.dev.sample_documents import bid_pdf
from app.signatures.service import SignatureService
from signing import PadesLevel, PadesSpec

YAMADA = "山田\u3000太郎"
SUZUKI = "鈴木\u3000花子"


@pytest.fixture
def world(client, pki):
    a = new_corporation(pki, name="株式会社大理建設")
    b = new_corporation(pki, name="合同会社別会社")
    card, person_id, token = enrolled_employee(client, pki, a, YAMADA)
    other_card, other_id, other_token = enrolled_employee(client, pki, a, SUZUKI)
    return {
        "a": a,
        "b": b,
        "card": card,
        "person_id": person_id,
        "token": token,
        "other_card": other_card,
        "other_id": other_id,
        "other_token": other_token,
    }


def credential_body(
    client, signing_card, corporate_number: str, *, challenge: dict | None = None
) -> dict:
    challenge = challenge or open_challenge(client, "credential")
    to_sign = base64.b64decode(challenge["to_sign"])
    return {
        "corporate_number": corporate_number,
        "challenge_id": challenge["id"],
        "signing": proof(signing_card, to_sign),
    }


def issue(client, token: str, signing_card, corporate_number: str, **kwargs):
    return client.post(
        "/api/v1/credentials",
        headers=bearer(token),
        json=credential_body(client, signing_card, corporate_number, **kwargs),
    )


def issued(client, world) -> dict:
    response = issue(client, world["token"], world["card"].signing, world["a"].corporate_number)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_an_employee_obtains_a_credential_naming_them_and_the_corporation(client, app, hsm, world):
    a = world["a"]
    body = issued(client, world)
    assert body["status"] == "active" and body["person_id"] == world["person_id"]
    assert body["corporate_number"] == a.corporate_number
    certificate = x509.load_der_x509_certificate(base64.b64decode(body["certificate"]))
    subject = certificate.subject

    def only(oid: x509.ObjectIdentifier) -> str:
        (attribute,) = subject.get_attributes_for_oid(oid)
        return str(attribute.value)

    # Hand-written expectations: the name on the card, the 商号, NTRJP-<法人番号> (EN 319 412-1).
    assert only(NameOID.COMMON_NAME) == "山田\u3000太郎"
    assert only(NameOID.ORGANIZATION_NAME) == "株式会社大理建設"
    assert only(NameOID.ORGANIZATION_IDENTIFIER) == "NTRJP-" + a.corporate_number
    assert only(NameOID.COUNTRY_NAME) == "JP"
    assert (
        certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        == "dairi Development Employee Signing CA"
    )
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment

    with app.extensions["dairi"].session_factory() as session:
        row = session.get(Credential, body["id"])
        assert row is not None
        ref = row.key_ref
    # The certificate certifies the HSM's key, and that key never leaves the token.
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki == hsm.public_key_info(ref)
    with hsm._session() as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=ref.cka_id)
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert ("credential:key:issued", "") in audit_codes(app)


def test_each_lists_their_own_and_a_representative_the_corporations(client, pki, world):
    a, b = world["a"], world["b"]
    mine = issued(client, world)
    own = client.get("/api/v1/credentials", headers=bearer(world["token"]))
    assert own.status_code == 200
    assert [c["id"] for c in own.get_json()["items"]] == [mine["id"]]
    theirs = client.get("/api/v1/credentials", headers=bearer(world["other_token"]))
    assert theirs.get_json()["items"] == [] and theirs.get_json()["total"] == 0
    # Nor can the colleague read it by id: as if there were none.
    problem(
        client.get(f"/api/v1/credentials/{mine['id']}", headers=bearer(world["other_token"])),
        404,
        "CREDENTIAL_UNKNOWN",
    )
    assert (
        client.get(f"/api/v1/credentials/{mine['id']}", headers=bearer(world["token"])).get_json()[
            "id"
        ]
        == mine["id"]
    )

    rep_a = login(client, a.representative)
    listed = client.get(
        f"/api/v1/corporations/{a.corporate_number}/credentials", headers=bearer(rep_a)
    )
    assert listed.status_code == 200
    assert [c["id"] for c in listed.get_json()["items"]] == [mine["id"]]
    rep_b = login(client, b.representative)
    problem(
        client.get(f"/api/v1/corporations/{a.corporate_number}/credentials", headers=bearer(rep_b)),
        403,
        "FORBIDDEN",
    )
    problem(
        client.get(f"/api/v1/credentials/{mine['id']}", headers=bearer(rep_b)),
        404,
        "CREDENTIAL_UNKNOWN",
    )
    # An employee is no representative of the corporation.
    problem(
        client.get(
            f"/api/v1/corporations/{a.corporate_number}/credentials", headers=bearer(world["token"])
        ),
        403,
        "FORBIDDEN",
    )


def test_a_listing_is_paged_by_the_database(client, app, world):
    ids = [issued(client, world)["id"] for _ in range(3)]
    rep = login(client, world["a"].representative)
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if "FROM credentials" in statement:
            statements.append(statement)

    engine = app.extensions["dairi"].engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        own = client.get("/api/v1/credentials?page=2&page_size=1", headers=bearer(world["token"]))
        corporation = client.get(
            f"/api/v1/corporations/{world['a'].corporate_number}/credentials?page=3&page_size=2",
            headers=bearer(rep),
        )
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert own.status_code == 200 and corporation.status_code == 200
    assert [c["id"] for c in own.get_json()["items"]] == [ids[1]]
    assert own.get_json()["total"] == 3
    assert corporation.get_json()["items"] == [] and corporation.get_json()["total"] == 3
    # Each listing reads one page (LIMIT) and a count, never every row.
    listings = [s for s in statements if "count(" not in s]
    assert len(listings) == 2 and all("LIMIT" in s for s in listings), statements


def test_a_revoked_credential_is_revoked_at_the_ca_and_signs_nothing(client, app, pki, world):
    a, b = world["a"], world["b"]
    mine = issued(client, world)
    context = app.extensions["dairi"]
    with context.session_factory() as session:  # it signs while active
        result, _ = SignatureService(session, context).sign_pdf(
            mine["id"], bid_pdf(), PadesSpec(level=PadesLevel.B_B)
        )
        assert result.pdf.startswith(b"%PDF")

    # Another corporation's representative cannot revoke it (nor see it); a colleague neither.
    for token in (login(client, b.representative), world["other_token"]):
        problem(
            client.post(
                f"/api/v1/credentials/{mine['id']}/revocation",
                headers=bearer(token),
                json={"reason": "keyCompromise"},
            ),
            404,
            "CREDENTIAL_UNKNOWN",
        )
    problem(
        client.post(
            f"/api/v1/credentials/{mine['id']}/revocation",
            headers=bearer(world["token"]),
            json={"reason": "certificateHold"},
        ),
        422,
        "VALIDATION_FAILED",
    )

    rep_a = login(client, a.representative)
    response = client.post(
        f"/api/v1/credentials/{mine['id']}/revocation",
        headers=bearer(rep_a),
        json={"reason": "keyCompromise"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "revoked" and body["revocation_reason"] == "keyCompromise"
    assert body["revoked_at_ca"] is True
    certificate = x509.load_der_x509_certificate(base64.b64decode(mine["certificate"]))
    status, _, reason = pki.cas["employee-signing"].status(certificate.serial_number)
    assert (status, reason) == ("revoked", x509.ReasonFlags.key_compromise)
    assert (
        client.get(f"/api/v1/credentials/{mine['id']}", headers=bearer(world["token"])).get_json()[
            "status"
        ]
        == "revoked"
    )
    problem(
        client.post(f"/api/v1/credentials/{mine['id']}/revocation", headers=bearer(world["token"])),
        409,
        "CREDENTIAL_ALREADY_REVOKED",
    )

    with context.session_factory() as session, pytest.raises(CredentialError) as refused:
        SignatureService(session, context).sign_pdf(
            mine["id"], bid_pdf(), PadesSpec(level=PadesLevel.B_B)
        )
    assert refused.value.code == "CREDENTIAL_NOT_ACTIVE"
    tags = audit_codes(app)
    assert ("credential:certificate:revoked", "") in tags
    assert ("credential:revocation:refused", "CREDENTIAL_ALREADY_REVOKED") in tags


def test_the_owner_revokes_and_a_suspended_credential_signs_nothing(client, app, world):
    first, second = issued(client, world), issued(client, world)
    response = client.post(
        f"/api/v1/credentials/{first['id']}/revocation", headers=bearer(world["token"])
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["revocation_reason"] == "unspecified"
    context = app.extensions["dairi"]
    with context.session_factory() as session:
        row = session.get(Credential, second["id"])
        assert row is not None
        row.status = CredentialStatus.SUSPENDED.value
        session.commit()
    with context.session_factory() as session, pytest.raises(CredentialError) as refused:
        SignatureService(session, context).sign_pdf(
            second["id"], bid_pdf(), PadesSpec(level=PadesLevel.B_B)
        )
    assert refused.value.code == "CREDENTIAL_NOT_ACTIVE"


def test_refusals_each_with_its_code_and_audited(client, app, pki, world):
    a, b = world["a"], world["b"]
    # No token.
    problem(
        client.post(
            "/api/v1/credentials",
            json=credential_body(client, world["card"].signing, a.corporate_number),
        ),
        401,
        "UNAUTHENTICATED",
    )
    # A colleague's card, and a stranger's card with the same basic items but another name.
    problem(
        issue(client, world["token"], world["other_card"].signing, a.corporate_number),
        403,
        "CARD_OF_ANOTHER_PERSON",
    )
    problem(
        issue(client, world["token"], new_card(pki, "田中\u3000一郎").signing, a.corporate_number),
        403,
        "CARD_OF_ANOTHER_PERSON",
    )
    # The authentication certificate is not a signing certificate.
    response = issue(client, world["token"], world["card"].authentication, a.corporate_number)
    assert response.status_code in (403, 422) and response.get_json()["code"]
    # Not employed by the corporation named.
    problem(
        issue(client, world["token"], world["card"].signing, b.corporate_number),
        422,
        "PERSON_NOT_EMPLOYEE",
    )
    # A replayed proof: the challenge was spent by the first answer.
    challenge = open_challenge(client, "credential")
    assert (
        issue(
            client, world["token"], world["card"].signing, a.corporate_number, challenge=challenge
        ).status_code
        == 201
    )
    problem(
        issue(
            client, world["token"], world["card"].signing, a.corporate_number, challenge=challenge
        ),
        409,
        "CHALLENGE_REPLAYED",
    )
    # A login challenge is no credential challenge.
    problem(
        issue(
            client,
            world["token"],
            world["card"].signing,
            a.corporate_number,
            challenge=open_challenge(client, "login"),
        ),
        409,
        "CHALLENGE_PURPOSE_MISMATCH",
    )
    # A stale proof: the challenge expired (at most 120 s).
    stale = open_challenge(client, "credential")
    move_clock(app, timedelta(seconds=app.extensions["dairi"].settings.challenge_seconds + 1))
    problem(
        issue(client, world["token"], world["card"].signing, a.corporate_number, challenge=stale),
        410,
        "CHALLENGE_EXPIRED",
    )
    # A representative is no employee.
    move_clock(app, timedelta(0))
    problem(
        issue(client, login(client, a.representative), world["card"].signing, a.corporate_number),
        403,
        "FORBIDDEN",
    )

    refused = [code for tag, code in audit_codes(app) if tag == "credential:issuance:refused"]
    assert {
        "CARD_OF_ANOTHER_PERSON",
        "PERSON_NOT_EMPLOYEE",
        "CHALLENGE_REPLAYED",
        "CHALLENGE_PURPOSE_MISMATCH",
        "CHALLENGE_EXPIRED",
    } <= set(refused)
    # Only the one good request made a credential.
    own = client.get("/api/v1/credentials", headers=bearer(world["token"])).get_json()
    assert own["total"] == 1


def test_the_api_is_documented(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {
        "/api/v1/credentials",
        "/api/v1/credentials/{credential_id}",
        "/api/v1/credentials/{credential_id}/revocation",
        "/api/v1/corporations/{corporate_number}/credentials",
    } <= set(paths)
    assert "post" in paths["/api/v1/credentials"] and "get" in paths["/api/v1/credentials"]


def test_a_reissued_card_of_the_same_person_proves_them(client, app, pki, world):
    """A new card carrying the four basic items proven at enrolment (the keyed digest
    matches) is the person's own; the certificate names the person as that card does."""
    reissued = new_card(pki, YAMADA)  # same name, birth date, sex and address
    response = issue(client, world["token"], reissued.signing, world["a"].corporate_number)
    assert response.status_code == 201, response.get_json()
    certificate = x509.load_der_x509_certificate(
        base64.b64decode(response.get_json()["certificate"])
    )
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == YAMADA
