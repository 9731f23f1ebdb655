"""Renewing a signing credential over the API (issue 11 item 1, DESIGN §5 and §6): a new
key and certificate, the attribute authority re-issues the live mandates held by the old
certificate (and the sub-delegations under them) to the new one, revokes the old ACs as
superseded, and the old credential signs nothing; every refusal with its code, and a
failure halfway leaves nothing written."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from asn1crypto import cms, ocsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from helpers_auth import (
    audit_codes,
    bearer,
    enrolled_employee,
    login,
    move_clock,
    open_challenge,
    problem,
    proof,
)
from helpers_mandates import (
    ENTITY,
    Employee,
    instruction,
    new_employee,
    root_grant,
    scope,
    sub_grant,
    try_sub_grant,
)
from sqlalchemy import select

from app.credentials.models import Credential, CredentialStatus
from app.credentials.service import CredentialError, CredentialService
from app.dev.sample_documents import bid_pdf
from app.mandates.models import Mandate
from app.mandates.service import MandateService
from app.people.caller import Caller, CallerKind
from app.people.models import Role, RoleAssignment
from app.signatures.service import SignatureService
from app.unit_of_work import unit_of_work
from delegation.certificates import EMBEDDED_SERIAL_OFFSET, MandateCertificateError
from delegation.instruction import DelegationRefused
from delegation.scope import Purpose
from delegation.verify import MandateChainReader
from hsm import KeyAlgorithm
from signing import PadesLevel, PadesSpec, sign_detached

YAMADA = "山田\u3000太郎"
SUZUKI = "鈴木\u3000花子"
TANAKA = "田中\u3000一郎"
GRANTS_RACING = 3
BID_QUERY = {"action": "bid", "procuring_entity": ENTITY, "amount_jpy": 1_000_000}


@pytest.fixture
def app_settings(base_settings, db_url, tmp_path):
    """The challenge rate limit out of the way: three enrolments, their logins and the
    card proofs below come from one address within a minute (the limit has its own
    tests)."""
    return base_settings.replace(
        database_url=db_url, data_dir=tmp_path, challenge_rate_per_minute=1_000
    )


def renewal_body(client, signing_card, *, challenge: dict | None = None) -> dict:
    challenge = challenge or open_challenge(client, "credential")
    return {
        "challenge_id": challenge["id"],
        "signing": proof(signing_card, base64.b64decode(challenge["to_sign"])),
    }


def renew(client, token: str, credential_id: str, signing_card, **kwargs):
    return client.post(
        f"/api/v1/credentials/{credential_id}/renewal",
        headers=bearer(token),
        json=renewal_body(client, signing_card, **kwargs),
    )


@pytest.fixture
def world(client, app, hsm, pki):
    """Yamada (credential obtained over the API) holds a root grant and sub-delegated it
    to Suzuki."""
    from helpers_auth import new_corporation

    corp = new_corporation(pki, name="株式会社大理建設")
    card, person_id, token = enrolled_employee(client, pki, corp, YAMADA)
    challenge = open_challenge(client, "credential")
    response = client.post(
        "/api/v1/credentials",
        headers=bearer(token),
        json={
            "corporate_number": corp.corporate_number,
            "challenge_id": challenge["id"],
            "signing": proof(card.signing, base64.b64decode(challenge["to_sign"])),
        },
    )
    assert response.status_code == 201, response.get_json()
    issued = response.get_json()
    context = app.extensions["dairi"]
    with context.session_factory() as session:
        row = session.get(Credential, issued["id"])
        signing = CredentialService(session, hsm, context.dev_pki).signing_credential(row)
    yamada = Employee(YAMADA, person_id, token, signing)
    suzuki = new_employee(client, hsm, pki, corp, SUZUKI)
    tanaka = new_employee(client, hsm, pki, corp, TANAKA)
    root = root_grant(client, corp, yamada, scope(max_depth=2))
    sub = sub_grant(client, hsm, corp, root, yamada, suzuki, scope(max_depth=1))
    subsub = sub_grant(client, hsm, corp, sub, suzuki, tanaka)
    # A grant Yamada held once, revoked since: not live, so not re-issued.
    revoked = root_grant(client, corp, yamada)
    response = client.post(
        f"/api/v1/mandates/{revoked['id']}/revocation",
        headers=bearer(login(client, corp.representative)),
    )
    assert response.status_code == 200, response.get_json()
    return {
        "corp": corp,
        "card": card,
        "yamada": yamada,
        "suzuki": suzuki,
        "tanaka": tanaka,
        "credential": issued,
        "root": root,
        "sub": sub,
        "subsub": subsub,
        "revoked": revoked,
    }


def mandate(client, token: str, mandate_id: str) -> dict:
    response = client.get(f"/api/v1/mandates/{mandate_id}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def chain(client, token: str, mandate_id: str) -> dict:
    response = client.get(
        f"/api/v1/mandates/{mandate_id}/chain", headers=bearer(token), query_string=BID_QUERY
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def crl_reasons(client) -> dict[int, str]:
    """The AA CRL's entries, serial → reason, read with asn1crypto."""
    response = client.get("/ac/crl")
    assert response.status_code == 200
    certificate_list = asn1_crl.CertificateList.load(response.data)
    return {
        entry["user_certificate"].native: entry.crl_reason_value.native
        for entry in certificate_list["tbs_cert_list"]["revoked_certificates"]
    }


def test_renewal_reissues_the_mandates_and_supersedes_the_old(client, app, hsm, pki, world):
    yamada, suzuki, corp = world["yamada"], world["suzuki"], world["corp"]
    old = world["credential"]
    old_root, old_sub = world["root"], world["sub"]
    token = yamada.token
    assert chain(client, token, old_sub["id"])["holds"] is True

    response = renew(client, token, old["id"], world["card"].signing)
    assert response.status_code == 201, response.get_json()
    new = response.get_json()
    assert new["status"] == "active" and new["id"] != old["id"]
    assert new["renewed_from"] == old["id"] and new["renewed_from_id"] == old["id"]
    assert new["person_id"] == yamada.person_id
    assert new["corporate_number"] == corp.corporate_number
    new_der = base64.b64decode(new["certificate"])
    new_cert = x509.load_der_x509_certificate(new_der)
    old_cert = x509.load_der_x509_certificate(base64.b64decode(old["certificate"]))
    assert new_cert.subject == old_cert.subject and new_cert.serial_number != old_cert.serial_number
    reissued = {r["from"]: r["to"] for r in new["reissued_mandates"]}
    old_subsub = world["subsub"]
    # Parents first; the revoked grant is not live, so not re-issued.
    assert list(reissued) == [old_root["id"], old_sub["id"], old_subsub["id"]]
    new_root_id, new_sub_id = reissued[old_root["id"]], reissued[old_sub["id"]]
    new_subsub_id = reissued[old_subsub["id"]]

    # The old credential: revoked as superseded, at the CA too; it signs nothing.
    shown = client.get(f"/api/v1/credentials/{old['id']}", headers=bearer(token)).get_json()
    assert (shown["status"], shown["revocation_reason"]) == ("revoked", "superseded")
    status, _, reason = pki.cas["employee-signing"].status(old_cert.serial_number)
    assert (status, reason) == ("revoked", x509.ReasonFlags.superseded)
    listed = client.get("/api/v1/credentials", headers=bearer(token)).get_json()["items"]
    assert [(c["id"], c["renewed_from_id"]) for c in listed] == [
        (old["id"], None),
        (new["id"], old["id"]),
    ]
    context = app.extensions["dairi"]
    with context.session_factory() as session, pytest.raises(CredentialError) as refused:
        SignatureService(session, context).sign_pdf(
            old["id"], bid_pdf(), PadesSpec(level=PadesLevel.B_B)
        )
    assert refused.value.code == "CREDENTIAL_NOT_ACTIVE"

    # Yamada's root grant, re-issued: a new AC held by the new certificate (compared by
    # hand: the holder's issuer and serial are the new certificate's).
    root = mandate(client, token, new_root_id)
    assert root["reissued_from_id"] == old_root["id"] and root["parent_id"] is None
    assert root["grantee"]["certificate_sha256"] == hashlib.sha256(new_der).hexdigest()
    assert root["instruction_sha256"] == old_root["instruction_sha256"]
    assert root["scope"] == old_root["scope"] and root["grantor"] == old_root["grantor"]
    ac = cms.AttributeCertificateV2.load(base64.b64decode(root["attribute_certificate"]))
    holder = ac["ac_info"]["holder"]["base_certificate_id"]
    assert holder["serial"].native == new_cert.serial_number
    assert holder["issuer"][0].chosen.untag().dump() == new_cert.issuer.public_bytes()
    assert ac["ac_info"]["serial_number"].native == uuid.UUID(new_root_id).int
    assert "reissued_from_id" not in mandate(client, token, old_root["id"])

    # Suzuki's sub-delegation, re-issued under the new root: same holder, the new
    # holder above as its grantor, a provenance naming the new root.
    sub = mandate(client, token, new_sub_id)
    assert sub["reissued_from_id"] == old_sub["id"] and sub["parent_id"] == new_root_id
    assert sub["grantee"]["certificate_sha256"] == suzuki.sha256
    assert sub["grantor"]["certificate_sha256"] == hashlib.sha256(new_der).hexdigest()
    sub_der = base64.b64decode(sub["attribute_certificate"])
    sub_ac = cms.AttributeCertificateV2.load(sub_der)
    (provenance,) = [
        e for e in sub_ac["ac_info"]["extensions"] if e["extn_id"].dotted.endswith(".2.1")
    ]
    (ancestor,) = provenance["extn_value"].parsed["ancestors"]
    assert (
        ancestor["ac_info"]["serial_number"].native
        == EMBEDDED_SERIAL_OFFSET + uuid.UUID(new_root_id).int
    )

    # Tanaka's sub-sub-delegation: same holder, same grantor (Suzuki), re-parented, and a
    # provenance naming the new root and the new sub-delegation.
    subsub = mandate(client, token, new_subsub_id)
    assert subsub["parent_id"] == new_sub_id and subsub["reissued_from_id"] == old_subsub["id"]
    assert subsub["grantor"]["certificate_sha256"] == suzuki.sha256
    assert subsub["grantee"]["certificate_sha256"] == world["tanaka"].sha256
    subsub_ac = cms.AttributeCertificateV2.load(base64.b64decode(subsub["attribute_certificate"]))
    (provenance,) = [
        e for e in subsub_ac["ac_info"]["extensions"] if e["extn_id"].dotted.endswith(".2.1")
    ]
    assert [
        a["ac_info"]["serial_number"].native for a in provenance["extn_value"].parsed["ancestors"]
    ] == [
        EMBEDDED_SERIAL_OFFSET + uuid.UUID(new_root_id).int,
        EMBEDDED_SERIAL_OFFSET + uuid.UUID(new_sub_id).int,
    ]

    # The old mandates are revoked as superseded, not by a cascade; their chains fail.
    for old_mandate in (old_root, old_sub, old_subsub):
        row = mandate(client, token, old_mandate["id"])
        assert (row["status"], row["revocation_reason"]) == ("revoked", "superseded")
        verdict = chain(client, token, old_mandate["id"])
        assert verdict["holds"] is False and "MANDATE_REVOKED" in verdict["reasons"]
    with context.session_factory() as session:
        revoked_by = {
            session.get(Mandate, m["id"]).revoked_by for m in (old_root, old_sub, old_subsub)
        }
    assert not any(by.startswith("cascade:") for by in revoked_by)
    for new_id in (new_root_id, new_sub_id, new_subsub_id):
        verdict = chain(client, token, new_id)
        assert verdict["holds"] is True and verdict["reasons"] == [], verdict

    # The AA's CRL lists the old serials with reason superseded, and no new one; its OCSP
    # responder says the same.
    reasons = crl_reasons(client)
    for old_id in (old_root["id"], old_sub["id"], old_subsub["id"]):
        assert reasons[uuid.UUID(old_id).int] == "superseded"
    assert reasons[uuid.UUID(world["revoked"]["id"]).int] == "privilege_withdrawn"
    for new_id in (new_root_id, new_sub_id, new_subsub_id):
        assert uuid.UUID(new_id).int not in reasons
    aa_der = context.attribute_authority.certificate_der
    assert ocsp_status(client, aa_der, uuid.UUID(old_sub["id"]).int) == ("revoked", "superseded")
    assert ocsp_status(client, aa_der, uuid.UUID(new_sub_id).int) == ("good", None)

    # A relying party with only the leaf AC, the AA certificate and the CRL: the new leaf
    # holds for its holder and for no one else; the old leaf is revoked.
    reader = MandateChainReader(context.attribute_authority.certificate_der)
    revoked_at = context.clock()

    def status_of(serial: int):
        return revoked_at if serial in reasons else None

    purpose = Purpose("bid", ENTITY, None, 1_000_000, context.clock())

    def offline(leaf: bytes, signer: bytes):
        return reader.evaluate(
            leaf,
            purpose,
            principal=corp.corporate_number,
            signer_certificate_der=signer,
            status_of=status_of,
        )

    assert offline(sub_der, suzuki.certificate).holds
    new_root_ac = base64.b64decode(root["attribute_certificate"])
    assert offline(new_root_ac, new_der).holds
    assert "HOLDER_MISMATCH" in offline(new_root_ac, yamada.certificate).codes()
    old_sub_der = base64.b64decode(old_sub["attribute_certificate"])
    assert "MANDATE_REVOKED" in offline(old_sub_der, suzuki.certificate).codes()

    # Whom the authority query names now: Suzuki through the new chain only.
    authority = client.get(
        "/api/v1/authority",
        headers=bearer(token),
        query_string={"principal": corp.corporate_number, **BID_QUERY},
    ).get_json()["authorities"]
    assert sorted(a["mandate_id"] for a in authority) == sorted(
        [new_root_id, new_sub_id, new_subsub_id]
    )

    # Yamada sub-delegates under the new root with the new credential; under the old root,
    # with the old one, no more.
    refused = try_sub_grant(
        client, hsm, corp, old_root, yamada, world["tanaka"], scope(max_depth=0)
    )
    assert refused.status_code >= 400 and refused.get_json()["code"] == "ANCESTOR_REVOKED"
    with context.session_factory() as session:
        renewed = CredentialService(session, hsm, context.dev_pki).signing_credential(
            session.get(Credential, new["id"])
        )
    granted = sub_grant(
        client, hsm, corp, root, dataclasses.replace(yamada, credential=renewed), world["tanaka"]
    )
    assert granted["parent_id"] == new_root_id

    tags = [tag for tag, _ in audit_codes(app)]
    assert tags.count("credential:renewal:made") == 1
    assert tags.count("mandate:grant:reissued") == 3
    assert tags.count("mandate:revoked") == 1 + 3  # the earlier revocation, then superseded
    assert "credential:certificate:revoked" in tags


def test_refusals_each_with_its_code_and_nothing_half_written(client, app, pki, world, monkeypatch):
    corp, yamada, suzuki = world["corp"], world["yamada"], world["suzuki"]
    credential_id = world["credential"]["id"]
    context = app.extensions["dairi"]
    card = world["card"]

    # Not the owner: a colleague does not see it; a representative is no employee.
    problem(renew(client, suzuki.token, credential_id, card.signing), 404, "CREDENTIAL_UNKNOWN")
    problem(
        renew(client, login(client, corp.representative), credential_id, card.signing),
        403,
        "FORBIDDEN",
    )
    # An auditor sees the credential, and is still not its owner.
    with context.session_factory() as session, session.begin():
        session.add(
            RoleAssignment(person_id=suzuki.person_id, role=Role.AUDITOR.value, granted_by="test")
        )
    problem(renew(client, suzuki.token, credential_id, card.signing), 403, "FORBIDDEN")
    # The card of another person.
    colleague_card, _, _ = enrolled_employee(client, pki, corp, "高橋\u3000次郎")
    problem(
        renew(client, yamada.token, credential_id, colleague_card.signing),
        403,
        "CARD_OF_ANOTHER_PERSON",
    )
    # No card proof at all; a stale one.
    response = client.post(
        f"/api/v1/credentials/{credential_id}/renewal",
        headers=bearer(yamada.token),
        json={"challenge_id": open_challenge(client, "credential")["id"]},
    )
    problem(response, 422, "VALIDATION_FAILED")
    stale = open_challenge(client, "credential")
    move_clock(app, timedelta(seconds=context.settings.challenge_seconds + 1))
    problem(
        renew(client, yamada.token, credential_id, card.signing, challenge=stale),
        410,
        "CHALLENGE_EXPIRED",
    )
    move_clock(app, timedelta(0))

    # The attribute authority fails on the second re-issue: nothing is left, and the
    # new key is destroyed again.
    authority = context.attribute_authority
    issue = authority.issue
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise MandateCertificateError("the AA failed", "AA_KEY_MISMATCH")
        return issue(*args, **kwargs)

    keys_before = len(hsm_keys(context))
    monkeypatch.setattr(authority, "issue", failing)
    response = renew(client, yamada.token, credential_id, card.signing)
    monkeypatch.undo()
    assert response.status_code >= 400 and response.get_json()["code"] == "AA_KEY_MISMATCH"
    assert len(calls) == 2
    assert len(hsm_keys(context)) == keys_before
    with context.session_factory() as session:
        assert session.query(Credential).filter_by(person_id=yamada.person_id).count() == 1
        assert session.query(Mandate).count() == 4
        assert session.query(Mandate).filter(Mandate.revoked_at.is_not(None)).count() == 1
        row = session.get(Credential, credential_id)
        assert row.status == CredentialStatus.ACTIVE
    assert list(crl_reasons(client).values()) == ["privilege_withdrawn"]
    assert chain(client, yamada.token, world["sub"]["id"])["holds"] is True

    # A suspended credential, then a revoked one, is not renewed.
    with context.session_factory() as session:
        session.get(Credential, credential_id).status = CredentialStatus.SUSPENDED.value
        session.commit()
    problem(renew(client, yamada.token, credential_id, card.signing), 409, "CREDENTIAL_NOT_ACTIVE")
    with context.session_factory() as session:
        session.get(Credential, credential_id).status = CredentialStatus.ACTIVE.value
        session.commit()
    assert (
        client.post(
            f"/api/v1/credentials/{credential_id}/revocation", headers=bearer(yamada.token)
        ).status_code
        == 200
    )
    problem(renew(client, yamada.token, credential_id, card.signing), 409, "CREDENTIAL_NOT_ACTIVE")

    refused = [code for tag, code in audit_codes(app) if tag == "credential:renewal:refused"]
    assert {
        "FORBIDDEN",
        "CARD_OF_ANOTHER_PERSON",
        "CHALLENGE_EXPIRED",
        "AA_KEY_MISMATCH",
        "CREDENTIAL_NOT_ACTIVE",
    } <= set(refused)
    assert "credential:renewal:made" not in {tag for tag, _ in audit_codes(app)}


def ocsp_status(client, aa_der: bytes, serial: int) -> tuple[str, str | None]:
    """The AA's OCSP answer for one AC serial: (status, reason), read with asn1crypto."""
    aa = asn1_x509.Certificate.load(aa_der)
    request = ocsp.OCSPRequest(
        {
            "tbs_request": {
                "request_list": [
                    {
                        "req_cert": {
                            "hash_algorithm": {"algorithm": "sha1"},
                            "issuer_name_hash": aa.subject.sha1,
                            "issuer_key_hash": aa.public_key.sha1,
                            "serial_number": serial,
                        }
                    }
                ]
            }
        }
    )
    response = client.post("/ac/ocsp", data=request.dump(), content_type="application/ocsp-request")
    assert response.status_code == 200
    basic = ocsp.OCSPResponse.load(response.data)["response_bytes"]["response"].parsed
    (single,) = basic["tbs_response_data"]["responses"]
    status = single["cert_status"]
    if status.name == "revoked":
        return "revoked", status.chosen["revocation_reason"].native
    return status.name, None


def hsm_keys(context) -> list[bytes]:
    """The CKA_IDs of the private keys on the token."""
    from pkcs11 import Attribute, ObjectClass

    with context.hsm._session() as session:
        return [
            k[Attribute.ID] for k in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        ]


def test_grants_racing_a_renewal_end_under_the_new_chain_or_refused(client, app, hsm, world):
    """Sub-delegations under the (to be superseded) sub-delegation, granted while the
    renewal runs: each is either committed first and then re-issued under the new chain,
    or refused (``ANCESTOR_REVOKED``); no live mandate stays under a superseded one. On
    PostgreSQL (row locks) and SQLite (the write lock at the start of a transaction)."""
    context = app.extensions["dairi"]
    corp, suzuki, tanaka = world["corp"], world["suzuki"], world["tanaka"]
    parent = world["sub"]  # Suzuki's, under Yamada's root: re-issued by the renewal
    employee = Caller(
        CallerKind.PERSON,
        suzuki.person_id,
        suzuki.name,
        employee_of=frozenset({corp.corporate_number}),
    )
    signed = []
    for n in range(GRANTS_RACING):
        data = instruction(
            corp,
            tanaka,
            scope(max_depth=0, amount_limit_jpy=1000 + n),
            parent=parent["id"],
            grantor_name=suzuki.name,
            grantor_title=None,
        )
        signed.append((data, sign_detached(hsm, suzuki.credential, data)))
    start = threading.Barrier(GRANTS_RACING + 1)

    def renewal() -> list[tuple[str, str]]:
        with unit_of_work(context.session_factory) as session:
            start.wait()
            service = CredentialService(session, hsm, context.dev_pki)
            made = service.renew(
                service.get(world["credential"]["id"]),
                "renewed in a race",
                KeyAlgorithm.RSA_2048,
                common_name=None,
                authority=context.attribute_authority,
                actor="test",
                now=context.clock(),
            )
            return [(r.old.id, r.new.id) for r in made.reissued]

    def grant(item: tuple[bytes, bytes]) -> str:
        data, signatures = item
        try:
            with unit_of_work(context.session_factory) as session:
                start.wait()
                MandateService(
                    session,
                    context.settings,
                    context.certificate_validator,
                    context.attribute_authority,
                    context.clock,
                ).grant(
                    data,
                    signatures,
                    grantee_certificate=tanaka.certificate,
                    grantee_person_id=tanaka.person_id,
                    actor=employee,
                )
            return hashlib.sha256(data).hexdigest()
        except DelegationRefused as exc:
            assert exc.code == "ANCESTOR_REVOKED", exc.code
            return "refused"

    with ThreadPoolExecutor(GRANTS_RACING + 1) as pool:
        futures = [pool.submit(renewal)] + [pool.submit(grant, item) for item in signed]
        results = [f.result(timeout=120) for f in futures]
    reissued = dict(results[0])
    granted = {r for r in results[1:] if r != "refused"}

    with context.session_factory() as session:
        rows = session.scalars(select(Mandate)).all()
    by_id = {r.id: r for r in rows}
    for row in rows:
        ancestor = row
        while ancestor.parent_id is not None:
            ancestor = by_id[ancestor.parent_id]
            if ancestor.revoked_at is not None:
                assert row.revoked_at is not None, f"{row.id} live under revoked {ancestor.id}"
    # Each granted one was committed before the renewal read the parent's children, so
    # the renewal re-issued it under the new parent: one live copy, from its instruction.
    live_under_new = [r for r in rows if r.parent_id == reissued[parent["id"]]]
    by_instruction = {r.instruction_sha256 for r in live_under_new}
    assert granted <= by_instruction
    for row in rows:
        if row.instruction_sha256 in granted and row.revoked_at is None:
            assert row.parent_id == reissued[parent["id"]] and row.reissued_from_id in reissued
    print(
        f"race: {len(granted)} granted first and re-issued, {GRANTS_RACING - len(granted)} refused"
    )
