"""Login by proof of possession, enrolment, and their refusals, over HTTP."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from helpers_auth import (
    PROBLEM,
    audit_codes,
    b64,
    bearer,
    der,
    enrolled_employee,
    invite,
    login,
    move_clock,
    new_card,
    new_corporation,
    open_challenge,
    problem,
    proof,
    try_enrol,
    try_login,
)
from sqlalchemy import func, select

from app.audit_trail.models import AuditRecord
from app.people.models import AuthChallenge
from identity.profiles import JPKI_AUTH_POLICY
from identity.proof import Challenge

# -- success paths -------------------------------------------------------------


def test_the_challenge_is_canonical_json_naming_service_purpose_and_expiry(client, app):
    challenge = open_challenge(client)
    signed = json.loads(base64.b64decode(challenge["to_sign"]))
    assert signed["service"] == app.extensions["dairi"].settings.public_base_url
    assert signed["purpose"] == "login"
    assert len(base64.urlsafe_b64decode(signed["challenge"] + "==")) == 32
    expires = datetime.fromisoformat(challenge["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=120)
    # The bytes are RFC 8785: sorted keys, no whitespace.
    assert (
        base64.b64decode(challenge["to_sign"])
        == json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


def test_a_representative_logs_in_with_the_registration_certificate(client, app, pki):
    corp = new_corporation(pki)
    response = try_login(client, corp.representative)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["access_token"].startswith("dairi_at_")
    assert body["caller"]["representative_of"] == [corp.corporate_number]
    me = client.get("/api/v1/me", headers=bearer(body["access_token"])).get_json()["caller"]
    assert me["kind"] == "representative" and me["roles"] == ["representative"]
    corporation = client.get(
        f"/api/v1/corporations/{corp.corporate_number}", headers=bearer(body["access_token"])
    ).get_json()
    assert corporation["registered_number"] == corp.registered_number
    assert ("auth:login:succeeded", "") in audit_codes(app)


def test_an_invited_employee_enrols_then_logs_in_with_the_authentication_certificate(
    client, app, pki
):
    corp = new_corporation(pki)
    _, person_id, token = enrolled_employee(client, pki, corp)
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()["caller"]
    assert me == {
        "kind": "person",
        "id": person_id,
        "name": "山田\u3000太郎",
        "roles": ["employee"],
        "employee_of": [corp.corporate_number],
        "representative_of": [],
        "scopes": [],
    }
    tags = [t for t, _ in audit_codes(app)]
    assert "enrolment:person:enrolled" in tags and "enrolment:invitation:created" in tags


def test_personal_data_other_than_the_name_is_not_kept_by_default(client, app, pki):
    from app.people.models import Person

    corp = new_corporation(pki)
    _, person_id, _ = enrolled_employee(client, pki, corp)
    with app.extensions["dairi"].session_factory() as session:
        person = session.get(Person, person_id)
        assert person.personal_data is None
        details = " ".join(r.details for r in session.scalars(select(AuditRecord)))
    assert "霞が関" not in details and "1990" not in details


def test_logout_revokes_the_token_and_expiry_ends_it(client, app, pki):
    corp = new_corporation(pki)
    token = login(client, corp.representative)
    assert client.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 204
    problem(client.get("/api/v1/me", headers=bearer(token)), 401, "TOKEN_INVALID")
    other = login(client, corp.representative)
    move_clock(app, timedelta(seconds=901))
    body = problem(client.get("/api/v1/me", headers=bearer(other)), 401, "TOKEN_EXPIRED")
    assert "detail" in body


# -- refusals --------------------------------------------------------------------


def test_a_challenge_answers_once(client, app, pki):
    corp = new_corporation(pki)
    challenge = open_challenge(client)
    assert try_login(client, corp.representative, challenge=challenge).status_code == 201
    problem(try_login(client, corp.representative, challenge=challenge), 409, "CHALLENGE_REPLAYED")
    assert ("auth:login:refused", "CHALLENGE_REPLAYED") in audit_codes(app)


def test_an_expired_challenge_is_refused(client, app, pki):
    corp = new_corporation(pki)
    challenge = open_challenge(client)
    move_clock(app, timedelta(seconds=121))
    problem(try_login(client, corp.representative, challenge=challenge), 410, "CHALLENGE_EXPIRED")


def test_an_unknown_challenge_is_refused(client, pki):
    corp = new_corporation(pki)
    fake = {"id": "00000000-0000-0000-0000-000000000000", "to_sign": b64(b"anything")}
    problem(try_login(client, corp.representative, challenge=fake), 404, "CHALLENGE_NOT_FOUND")


def test_a_signature_by_another_key_is_refused(client, app, pki):
    corp, other = new_corporation(pki), new_corporation(pki)
    challenge = open_challenge(client)
    to_sign = base64.b64decode(challenge["to_sign"])
    body = {
        "certificate": b64(der(corp.representative)),
        "signature": b64(other.representative.sign(to_sign)),
    }
    problem(
        client.post(f"/api/v1/auth/challenges/{challenge['id']}/response", json=body),
        403,
        "SIGNATURE_INVALID",
    )
    assert ("auth:login:refused", "SIGNATURE_INVALID") in audit_codes(app)


def test_a_signature_over_other_bytes_is_refused(client, pki):
    corp = new_corporation(pki)
    challenge = open_challenge(client)
    forged = Challenge(
        b"\0" * 32,
        "login",
        "http://elsewhere",
        datetime.now(UTC),
        datetime.now(UTC) + timedelta(seconds=60),
    ).to_sign()
    problem(
        client.post(
            f"/api/v1/auth/challenges/{challenge['id']}/response",
            json=proof(corp.representative, forged),
        ),
        403,
        "SIGNATURE_INVALID",
    )


def test_an_authentication_certificate_that_is_not_enrolled_is_refused(client, pki):
    card = new_card(pki)
    problem(try_login(client, card.authentication), 403, "CERTIFICATE_NOT_ENROLLED")


def test_a_revoked_authentication_certificate_is_refused(client, app, pki):
    corp = new_corporation(pki)
    card, _, _ = enrolled_employee(client, pki, corp)
    pki.ca_for_slug("jpki-auth").revoke(
        card.authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    move_clock(app, timedelta(minutes=6))  # past the cached good answer
    problem(try_login(client, card.authentication), 403, "CERTIFICATE_REVOKED")


def test_a_signing_certificate_revoked_for_affiliation_change_needs_reenrolment(client, app, pki):
    corp = new_corporation(pki)
    card, person_id, _ = enrolled_employee(client, pki, corp)
    pki.ca_for_slug("jpki-sign").revoke(
        card.signing.certificate.serial_number,
        x509.ReasonFlags.affiliation_changed,
        now=pki.clock(),
    )
    move_clock(app, timedelta(minutes=6))
    problem(try_login(client, card.authentication), 403, "REENROLL_REQUIRED")
    # The representative invites the same person to re-bind; the new card then works.
    rep = login(client, corp.representative)
    invitation = invite(client, rep, corp.corporate_number, person_id=person_id)
    assert invitation["rebind"] is True
    reissued = new_card(pki)
    response = try_enrol(client, invitation["code"], reissued)
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {
        "person_id": person_id,
        "name": "山田\u3000太郎",
        "rebound": True,
        "corporate_number": corp.corporate_number,
    }
    token = login(client, reissued.authentication)
    assert client.get("/api/v1/me", headers=bearer(token)).get_json()["caller"]["id"] == person_id
    problem(try_login(client, card.authentication), 403, "CERTIFICATE_NOT_ENROLLED")


def test_a_registration_certificate_with_a_malformed_number_is_refused(client, pki):
    from devpki.cards import issue_representative_card

    for number in ("01100109899", "01100109899X"):
        card = issue_representative_card(
            pki,
            corporate_name="株式会社不正",
            registered_number=number,
            head_office_address="東京都",
            representative_name="誰\u3000某",
            representative_title="代表取締役",
        )
        problem(try_login(client, card), 422, "CORPORATE_NUMBER_INVALID")


def test_a_director_who_is_not_a_representative_is_refused(client, pki):
    corp = new_corporation(pki, title="取締役")
    problem(try_login(client, corp.representative), 403, "NOT_A_REPRESENTATIVE")


def test_a_test_card_is_refused_unless_configured(client, pki):
    from devpki.cards import issue_my_number_card

    card = issue_my_number_card(
        pki,
        name="試験\u3000花子",
        birth_date="420000101",
        sex="2",
        address="東京都",
        prefecture="東京都",
        city="千代田区",
        test_card=True,
    )
    problem(try_login(client, card.authentication), 403, "CERTIFICATE_POLICY_MISMATCH")


def test_a_certificate_from_an_unknown_issuer_is_refused(client):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.COMMON_NAME, "偽物"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(JPKI_AUTH_POLICY), None)]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    challenge = open_challenge(client)
    to_sign = base64.b64decode(challenge["to_sign"])
    from cryptography.hazmat.primitives.asymmetric import padding

    body = {
        "certificate": b64(cert.public_bytes(serialization.Encoding.DER)),
        "signature": b64(key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())),
    }
    problem(
        client.post(f"/api/v1/auth/challenges/{challenge['id']}/response", json=body),
        403,
        "CERTIFICATE_ISSUER_UNKNOWN",
    )


def test_enrolment_refuses_another_name_and_a_used_invitation(client, pki):
    corp = new_corporation(pki)
    rep = login(client, corp.representative)
    code = invite(client, rep, corp.corporate_number, name="鈴木\u3000次郎")["code"]
    problem(
        try_enrol(client, code, new_card(pki, "山田\u3000太郎")), 403, "ENROLMENT_NAME_MISMATCH"
    )
    card = new_card(pki, "鈴木 次郎")  # an ASCII space matches U+3000
    assert try_enrol(client, code, card).status_code == 201
    problem(try_enrol(client, code, card), 404, "INVITATION_INVALID")


def test_enrolment_needs_the_signing_certificate_of_the_jpki_sign_profile(client, pki):
    corp = new_corporation(pki)
    rep = login(client, corp.representative)
    code = invite(client, rep, corp.corporate_number, name="山田\u3000太郎")["code"]
    card = new_card(pki)
    problem(
        try_enrol(client, code, card, signing=card.authentication),
        403,
        "CERTIFICATE_POLICY_MISMATCH",
    )


# -- floods and malformed input ----------------------------------------------------


@pytest.fixture
def tight_app(app, app_settings, hsm):  # `app` migrates the database
    from app.factory import create_app

    application = create_app(
        app_settings.replace(challenge_rate_per_minute=3, max_open_challenges=5), hsm=hsm
    )
    yield application
    application.extensions["dairi"].engine.dispose()


def test_challenges_are_rate_limited_per_client_and_bounded(tight_app):
    client = tight_app.test_client()
    for _ in range(3):
        assert client.post("/api/v1/auth/challenges", json={}).status_code == 201
    response = client.post("/api/v1/auth/challenges", json={})
    problem(response, 429, "RATE_LIMITED")
    # The limit counts per fixed minute: retry when this one ends.
    assert 0 < int(response.headers["Retry-After"]) <= 60
    other = tight_app.test_client()
    for address in ("10.0.0.2", "10.0.0.3"):
        env = {"REMOTE_ADDR": address}
        assert other.post("/api/v1/auth/challenges", json={}, environ_base=env).status_code == 201
    problem(
        other.post("/api/v1/auth/challenges", json={}, environ_base={"REMOTE_ADDR": "10.0.0.4"}),
        503,
        "CHALLENGES_EXHAUSTED",
    )
    # Once they expire, they are purged and room opens again.
    move_clock(tight_app, timedelta(seconds=121))
    assert client.post("/api/v1/auth/challenges", json={}).status_code == 201
    with tight_app.extensions["dairi"].session_factory() as session:
        assert session.scalar(select(func.count()).select_from(AuthChallenge)) == 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"certificate": "%%%not base64%%%", "signature": "AAAA"}, 422, "VALIDATION_FAILED"),
        (
            {"certificate": b64(b"\x30\x03\x02\x01\x05"), "signature": "AAAA"},
            422,
            "CERTIFICATE_MALFORMED",
        ),
        (
            {
                "certificate": b64(b"-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n"),
                "signature": "AAAA",
            },
            422,
            "CERTIFICATE_MALFORMED",
        ),
        ({"signature": "AAAA"}, 422, "VALIDATION_FAILED"),
        ({"certificate": 5, "signature": "AAAA"}, 422, "VALIDATION_FAILED"),
    ],
)
def test_malformed_responses_get_problems(client, body, status, code):
    challenge = open_challenge(client)
    problem(
        client.post(f"/api/v1/auth/challenges/{challenge['id']}/response", json=body), status, code
    )


def test_wrong_content_type_invalid_json_and_oversized_bodies_get_problems(client):
    challenge = open_challenge(client)
    url = f"/api/v1/auth/challenges/{challenge['id']}/response"
    problem(
        client.post(url, data="certificate=x", content_type="text/plain"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    response = client.post(url, data="{not json", content_type="application/json")
    assert response.status_code in (400, 422) and response.content_type == PROBLEM
    problem(
        client.post(
            url, data=json.dumps({"certificate": "A" * 70_000}), content_type="application/json"
        ),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    problem(
        client.post("/api/v1/auth/challenges", json={"purpose": "pay"}), 422, "VALIDATION_FAILED"
    )
