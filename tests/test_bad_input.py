"""Bad input is a 4xx problem with a stable code, never a 500 (issue 9.9): JSON nested
too deep, a certificate whose extensions are not DER, huge integers in paging and
query fields, bodies that are not UTF-8 — each refused before any state changes,
and each refusal explained and audited."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID
from helpers_auth import (
    b64,
    bearer,
    invite,
    login,
    new_card,
    new_corporation,
    open_challenge,
    problem,
)
from helpers_mandates import new_employee, root_grant
from sqlalchemy import select

from app.audit_trail.log import AuditLog
from app.people.models import AuthChallenge
from devpki.ca import end_entity_key_usage, new_rsa_key
from devpki.cards import VirtualCard
from identity.certificate_files import CertificateMalformed, describe_certificate, load_certificate
from identity.profiles import certificate_kind, policy_oids

# certificatePolicies as a SEQUENCE OF holding an INTEGER where each PolicyInformation
# SEQUENCE belongs: well-formed TLVs, not the structure the extension's OID promises.
BAD_POLICIES_DER = bytes.fromhex("3003020101")
DER = Encoding.DER


def audit_codes(app, tag: str) -> list[str]:
    with app.extensions["dairi"].session_factory() as session:
        return [
            r.event().details.get("code")
            for r in AuditLog(session).events()
            if r.event().tag == tag
        ]


def malformed_policies_card(pki, slug: str = "jpki-auth") -> VirtualCard:
    """A card certificate from the development JPKI CA whose certificatePolicies
    extension carries bytes that are not DER, signed like any other."""
    key = new_rsa_key()
    serial = secrets.token_hex(8).upper()
    certificate = pki.ca_for_slug(slug).issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.COMMON_NAME, serial + "A"),
            ]
        ),
        key.public_key(),
        now=pki.clock(),
        key_usage=end_entity_key_usage(non_repudiation=False),
        extensions=[
            (x509.UnrecognizedExtension(ExtensionOID.CERTIFICATE_POLICIES, BAD_POLICIES_DER), True)
        ],
    )
    return VirtualCard(key, certificate)


# -- certificates -----------------------------------------------------------------


def test_a_certificate_with_malformed_policies_is_malformed_in_the_library(pki):
    card = malformed_policies_card(pki)
    der = card.certificate.public_bytes(DER)
    with pytest.raises(CertificateMalformed):
        load_certificate(der)
    with pytest.raises(CertificateMalformed):
        describe_certificate(der)
    from asn1crypto import x509 as asn1_x509

    parsed = asn1_x509.Certificate.load(der)
    with pytest.raises(CertificateMalformed):
        policy_oids(parsed)
    with pytest.raises(CertificateMalformed):
        certificate_kind(parsed)


def test_a_login_with_a_malformed_certificate_is_refused_before_the_challenge_is_spent(
    client, app, pki
):
    card = malformed_policies_card(pki)
    challenge = open_challenge(client)
    to_sign = base64.b64decode(challenge["to_sign"])
    der = card.certificate.public_bytes(DER)
    response = client.post(
        f"/api/v1/auth/challenges/{challenge['id']}/response",
        json={"certificate": b64(der), "signature": b64(card.sign(to_sign))},
    )
    problem(response, 422, "CERTIFICATE_MALFORMED")
    with app.extensions["dairi"].session_factory() as session:
        row = session.scalar(select(AuthChallenge).where(AuthChallenge.id == challenge["id"]))
        assert row is not None and row.used_at is None  # not spent: no state changed
    assert audit_codes(app, "auth:login:refused") == ["CERTIFICATE_MALFORMED"]


def test_an_enrolment_with_a_malformed_certificate_is_refused_and_audited(client, app, pki):
    corp = new_corporation(pki)
    code = invite(
        client, login(client, corp.representative), corp.corporate_number, name="山田\u3000太郎"
    )["code"]
    good = new_card(pki)
    bad = malformed_policies_card(pki)
    challenge = open_challenge(client, "enrolment")
    to_sign = base64.b64decode(challenge["to_sign"])
    bad_der = bad.certificate.public_bytes(DER)
    good_der = good.signing.certificate.public_bytes(DER)
    response = client.post(
        "/api/v1/enrolments",
        json={
            "invitation_code": code,
            "challenge_id": challenge["id"],
            "authentication": {"certificate": b64(bad_der), "signature": b64(bad.sign(to_sign))},
            "signing": {"certificate": b64(good_der), "signature": b64(good.signing.sign(to_sign))},
        },
    )
    problem(response, 422, "CERTIFICATE_MALFORMED")
    with app.extensions["dairi"].session_factory() as session:
        row = session.scalar(select(AuthChallenge).where(AuthChallenge.id == challenge["id"]))
        assert row is not None and row.used_at is None
    assert audit_codes(app, "enrolment:person:refused") == ["CERTIFICATE_MALFORMED"]


# -- JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000 + "]" * 1000,
        '{"purpose": ' + "[" * 1000 + "]" * 1000 + "}",
        '{"purpose": ' + '{"a":' * 1000 + "1" + "}" * 1000 + "}",
    ],
    ids=["array", "array-in-field", "object-in-field"],
)
def test_json_nested_a_thousand_deep_is_refused(client, app, body):
    problem(
        client.post("/api/v1/auth/challenges", data=body, content_type="application/json"),
        400,
        "JSON_TOO_DEEP",
    )
    with app.extensions["dairi"].session_factory() as session:
        assert session.scalar(select(AuthChallenge)) is None


def test_json_a_little_nested_is_still_read(client):
    # The bound is generous for what the API takes: a field holding nested arrays
    # is an ordinary validation failure, not a depth refusal.
    response = client.post("/api/v1/auth/challenges", json={"purpose": [[["login"]]]})
    problem(response, 422, "VALIDATION_FAILED")


def test_a_body_that_is_not_utf8_is_refused(client, app):
    problem(
        client.post(
            "/api/v1/auth/challenges",
            data=b'{"purpose": "\xff\xfe"}',
            content_type="application/json",
        ),
        400,
        "BAD_REQUEST",
    )
    problem(
        client.post(
            "/api/v1/auth/challenges", data=b"\xff\xfe\x00", content_type="application/json"
        ),
        400,
        "BAD_REQUEST",
    )


def test_an_instruction_nested_a_thousand_deep_is_malformed(client, hsm, pki):
    corp = new_corporation(pki)
    grantee = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    deep = ('{"a":' * 5000 + "1" + "}" * 5000).encode()
    response = client.post(
        "/api/v1/mandates",
        headers=bearer(login(client, corp.representative)),
        json={
            "instruction": b64(deep),
            "signatures": b64(corp.representative.sign_cms(deep)),
            "grantee_certificate": b64(grantee.certificate),
            "grantee_person_id": grantee.person_id,
        },
    )
    problem(response, 422, "INSTRUCTION_MALFORMED")


# -- integers ---------------------------------------------------------------------

HUGE = str(10**20)


@pytest.fixture
def reader(client, hsm, pki) -> dict:
    corp = new_corporation(pki)
    grantee = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    mandate = root_grant(client, corp, grantee)
    return {
        "cn": corp.corporate_number,
        "token": login(client, corp.representative),
        "mandate": mandate["id"],
    }


@pytest.mark.parametrize(
    "query", [f"page={HUGE}", f"page_size={HUGE}", f"page=-{HUGE}", "page=" + "9" * 5000]
)
def test_huge_paging_numbers_are_validation_failures(client, reader, query):
    headers = bearer(reader["token"])
    for path in ("/api/v1/mandates", f"/api/v1/corporations/{reader['cn']}/employees"):
        problem(client.get(f"{path}?{query}", headers=headers), 422, "VALIDATION_FAILED")


def test_the_last_page_allowed_still_answers(client, reader):
    response = client.get("/api/v1/mandates?page=1000000", headers=bearer(reader["token"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["items"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/authority?principal={cn}&action=bid&amount_jpy=" + HUGE,
        "/api/v1/mandates/{mandate}/chain?action=bid&amount_jpy=" + HUGE,
        "/api/v1/mandates/{mandate}/chain?action=bid&amount_jpy=-" + HUGE,
    ],
)
def test_huge_amounts_are_answered(client, reader, path):
    # Amounts are compared in Python (an ASN.1 INTEGER has no bound): a huge one is
    # simply not covered; a negative one is a validation failure.
    url = path.format(cn=reader["cn"], mandate=reader["mandate"])
    response = client.get(url, headers=bearer(reader["token"]))
    if "-" in url.rpartition("=")[2]:
        problem(response, 422, "VALIDATION_FAILED")
    else:
        assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    "at",
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
    ],
)
def test_times_at_the_edge_of_the_calendar_are_answered(client, reader, at):
    from urllib.parse import quote

    headers = bearer(reader["token"])
    for path in (
        f"/api/v1/mandates?at={quote(at)}",
        f"/api/v1/authority?principal={reader['cn']}&action=bid&at={quote(at)}",
        f"/api/v1/mandates/{reader['mandate']}/chain?at={quote(at)}",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code in (200, 422), (path, response.get_data()[:300])


# -- text a database cannot store -------------------------------------------------
# PostgreSQL refuses NUL in text and no database stores an unpaired surrogate (which
# JSON's \u escapes can spell): such text is refused at the door, on every backend.


@pytest.fixture
def admin(client, app, pki) -> dict[str, str]:
    from helpers_auth import enrolled_employee

    from app.people.models import Role, RoleAssignment

    corp = new_corporation(pki)
    card, person, _ = enrolled_employee(client, pki, corp)
    with app.extensions["dairi"].session_factory() as session, session.begin():
        session.add(
            RoleAssignment(person_id=person, role=Role.ADMINISTRATOR.value, granted_by="test")
        )
    return {"cn": corp.corporate_number, **bearer(login(client, card.authentication))}


@pytest.mark.parametrize(
    "text",
    ["\\u0000", "a\\u0000b", "\\ud800", "x\\udfff"],
    ids=["nul", "inner-nul", "high-surrogate", "low-surrogate"],
)
@pytest.mark.parametrize(
    "path,body",
    [
        (
            "/api/v1/clients",
            '{"name": "%s", "scopes": ["mandates:read"], "all_corporations": true}',
        ),
        ("/api/v1/corporations/{cn}/invitations", '{"name": "%s"}'),
        ("/api/v1/corporations/{cn}/invitations", '{"person_id": "%s"}'),
        ("/api/v1/role-assignments", '{"person_id": "%s", "role": "auditor"}'),
        (
            "/api/v1/enrolments",
            '{"invitation_code": "%s", "challenge_id": "c", "authentication": '
            '{"certificate": "AAAA", "signature": "AAAA"}, "signing": {"certificate": "AAAA", '
            '"signature": "AAAA"}}',
        ),
        ("/api/v1/auth/challenges", '{"purpose": "login", "%s": 1}'),
    ],
    ids=[
        "client-name",
        "invitation-name",
        "invitation-person",
        "role-person",
        "enrolment",
        "member-name",
    ],
)
def test_json_text_a_database_cannot_store_is_refused(client, admin, path, body, text):
    headers = {"Authorization": admin["Authorization"]}
    response = client.post(
        path.format(cn=admin["cn"]),
        data=body % text,
        headers=headers,
        content_type="application/json",
    )
    problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/mandates?grantee=%00",
        "/api/v1/mandates/%00",
        "/api/v1/mandates/a%00/chain",
        "/api/v1/corporations/%00/employees",
        "/api/v1/authority?principal={cn}&action=bid&procuring_entity=a%00",
    ],
)
def test_nul_in_a_url_is_refused(client, admin, path):
    headers = {"Authorization": admin["Authorization"]}
    problem(client.get(path.format(cn=admin["cn"]), headers=headers), 422, "VALIDATION_FAILED")


def test_nul_in_a_url_of_a_write_is_refused(client, admin):
    headers = {"Authorization": admin["Authorization"]}
    for method, path in (
        ("DELETE", "/api/v1/clients/%00"),
        ("DELETE", "/api/v1/role-assignments/%00"),
    ):
        problem(client.open(path, method=method, headers=headers), 422, "VALIDATION_FAILED")
    problem(
        client.post(
            "/api/v1/auth/challenges/%00/response",
            json={"certificate": "AAAA", "signature": "AAAA"},
        ),
        422,
        "VALIDATION_FAILED",
    )


def test_client_credentials_with_nul_are_invalid(client, admin):
    for pair in (b"\x00:\x00", b"dairi_client_x\x00:secret"):
        response = client.get(
            "/api/v1/me", headers={"Authorization": "Basic " + base64.b64encode(pair).decode()}
        )
        problem(response, 401, "CLIENT_CREDENTIALS_INVALID")


def test_a_number_too_long_to_read_is_a_bad_request(client, admin):
    headers = {"Authorization": admin["Authorization"]}
    body = '{"representatives": 1' + "0" * 5000 + "}"
    problem(
        client.put(
            f"/api/v1/corporations/{admin['cn']}/joint-representation",
            data=body,
            headers=headers,
            content_type="application/json",
        ),
        400,
        "BAD_REQUEST",
    )
