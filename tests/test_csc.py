"""The Cloud Signature Consortium API (issue 12 item 2): an employee's CSC client lists
and reads its credentials, authorises exact hashes with the JPKI card (SCAL 2) under a
mandate, and has them signed in the HSM; every refusal of the signing API holds here
with its code; pyHanko's own ``CSCSigner`` signs a PDF at B-LT through dairi."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from datetime import timedelta
from io import BytesIO

import aiohttp
import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from helpers_auth import audit_codes, bearer, login, move_clock, new_corporation, problem
from helpers_mandates import Employee, root_grant
from helpers_signing_sessions import Signer, authorized, new_signer, opened, purpose, try_sign
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select
from werkzeug.serving import make_server

from app.audit_trail.models import AuditRecord
from app.credentials.models import Credential
from app.credentials.service import CredentialOwner, CredentialService
from app.csc.service import CscService
from app.dev.sample_documents import bid_pdf
from app.outages import DatabaseUnavailable
from app.signing_sessions.models import SigningSession
from devpki.fetchers import TransportFetcherBackend
from devpki.tsa import InProcessTimeStamper
from hsm import HsmUnavailable, KeyAlgorithm, SignatureScheme, UnsupportedScheme

DER = Encoding.DER
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
RSA_SHA256 = "1.2.840.113549.1.1.11"
YAMADA = "山田\u3000太郎"
SUZUKI = "鈴木\u3000花子"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def digests(*labels: str) -> list[bytes]:
    return [hashlib.sha256(label.encode()).digest() for label in labels]


def rsa_signer(client, hsm, signer: Signer, corp) -> Signer:
    """An RSA-2048 credential for the same person (card and token)."""
    context = client.application.extensions["dairi"]
    with context.session_factory() as session:
        service = CredentialService(session, hsm, context.dev_pki)
        issued = service.issue(
            f"RSA {signer.employee.person_id}",
            KeyAlgorithm.RSA_2048,
            CredentialOwner(signer.employee.person_id, corp.corporate_number),
        )
        session.commit()
        credential = service.signing_credential(issued)
        credential_id = issued.id
    employee = Employee(signer.employee.name, signer.employee.person_id, signer.token, credential)
    return Signer(employee, signer.card, credential_id)


@pytest.fixture
def world(client, hsm, pki):
    a = new_corporation(pki, name="株式会社大理建設")
    yamada = new_signer(client, hsm, pki, a, YAMADA)
    suzuki = new_signer(client, hsm, pki, a, SUZUKI)
    mandate = root_grant(client, a, yamada.employee)
    return {"a": a, "yamada": yamada, "suzuki": suzuki, "mandate": mandate}


def post(client, path: str, signer, body: dict, *, version: str = "v2", token=None):
    return client.post(f"/csc/{version}/{path}", headers=bearer(token or signer.token), json=body)


def authorize_body(signer, corp, hashes_: list[bytes], **changes) -> dict:
    body = {
        "credentialID": signer.credential_id,
        "numSignatures": len(hashes_),
        "hashes": [b64(h) for h in hashes_],
        "hashAlgorithmOID": SHA256,
        "dairi_purpose": purpose(corp),
    }
    body.update(changes)
    return body


def card_auth_data(card, to_sign: bytes) -> list[dict]:
    return [
        {"id": "dairi_card_certificate", "value": b64(card.certificate.public_bytes(DER))},
        {"id": "dairi_card_signature", "value": b64(card.sign(to_sign))},
    ]


def try_sad(client, signer, corp, hashes_, *, card=None, token=None, **changes):
    body = authorize_body(signer, corp, hashes_, **changes)
    first = post(client, "credentials/authorize", signer, body, token=token)
    if first.status_code != 200:
        return first
    to_sign = base64.b64decode(first.get_json()["dairi_to_sign"])
    body["authData"] = card_auth_data(card or signer.card.authentication, to_sign)
    return post(client, "credentials/authorize", signer, body, token=token)


def try_sad_first(client, signer, corp, hashes_) -> dict:
    """The answer of credentials/authorize without authData (``dairi_to_sign``)."""
    first = post(client, "credentials/authorize", signer, authorize_body(signer, corp, hashes_))
    assert first.status_code == 200, first.get_json()
    return first.get_json()


def sad_for(client, signer, corp, hashes_, **changes) -> str:
    response = try_sad(client, signer, corp, hashes_, **changes)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["SAD"]


def created_events(app) -> list[dict]:
    """The details of each ``signature:csc:created`` event, in order."""
    with app.extensions["dairi"].session_factory() as db:
        rows = db.scalars(
            select(AuditRecord)
            .where(AuditRecord.tag == "signature:csc:created")
            .order_by(AuditRecord.sequence)
        )
        return [json.loads(r.details) for r in rows]


def sign_hash(client, signer, sad, hashes_, *, token=None, **changes):
    body = {
        "credentialID": signer.credential_id,
        "SAD": sad,
        "hashes": [b64(h) for h in hashes_],
        "hashAlgorithmOID": SHA256,
        "signAlgo": ECDSA_SHA256,
    }
    body.update(changes)
    return post(client, "signatures/signHash", signer, body, token=token)


def test_a_csc_client_signs_a_batch_of_hashes_after_the_card_proof(client, app, hsm, world):
    a, yamada, mandate = world["a"], world["yamada"], world["mandate"]
    info = client.post("/csc/v2/info", json={})
    assert info.status_code == 200
    shown = info.get_json()
    assert shown["region"] == "JP" and shown["specs"].startswith("2.")
    assert "signatures/signHash" in shown["methods"] and "OAuth" in shown["description"]
    listed = post(client, "credentials/list", yamada, {})
    assert listed.get_json()["credentialIDs"] == [yamada.credential_id]
    read = post(
        client,
        "credentials/info",
        yamada,
        {"credentialID": yamada.credential_id, "certificates": "chain", "certInfo": True},
    )
    assert read.status_code == 200, read.get_json()
    described = read.get_json()
    assert described["SCAL"] == "2" and described["authMode"] == "explicit"
    assert described["key"] == {
        "status": "enabled",
        "algo": [ECDSA_SHA256],
        "len": 256,
        "curve": "1.2.840.10045.3.1.7",
    }
    assert described["cert"]["status"] == "valid" and described["multisign"] >= 20
    certs = [base64.b64decode(c) for c in described["cert"]["certificates"]]
    assert len(certs) >= 2 and hashlib.sha256(certs[0]).hexdigest() == yamada.employee.sha256
    single = post(client, "credentials/info", yamada, {"credentialID": yamada.credential_id})
    assert len(single.get_json()["cert"]["certificates"]) == 1

    batch = digests("入札書 1", "入札書 2", "入札書 3")
    body = authorize_body(yamada, a, batch)
    first = post(client, "credentials/authorize", yamada, body)
    assert first.status_code == 200, first.get_json()
    assert "SAD" not in first.get_json() and first.get_json()["dairi_mandate_id"] == mandate["id"]
    to_sign = base64.b64decode(first.get_json()["dairi_to_sign"])
    bound = json.loads(to_sign)  # what the card signs, member by member (by hand)
    assert bound["purpose"] == "signature-activation"
    assert bound["service"] == app.extensions["dairi"].settings.public_base_url
    assert bound["credential"] == {
        "id": yamada.credential_id,
        "certificate_sha256": yamada.employee.sha256,
    }
    assert bound["mandate"] == mandate["id"] and bound["signing_purpose"] == purpose(a)
    assert bound["documents"] == [h.hex() for h in batch] and bound["document_count"] == 3
    body["authData"] = card_auth_data(yamada.card.authentication, to_sign)
    second = post(client, "credentials/authorize", yamada, body)
    assert second.status_code == 200, second.get_json()
    sad, expires_in = second.get_json()["SAD"], second.get_json()["expiresIn"]
    assert 0 < expires_in <= 300

    signed = sign_hash(client, yamada, sad, batch)
    assert signed.status_code == 200, signed.get_json()
    signatures = [base64.b64decode(s) for s in signed.get_json()["signatures"]]
    key = x509.load_der_x509_certificate(certs[0]).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    for digest, signature in zip(batch, signatures, strict=True):
        key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    # Replayed: the SAD is single use. Errors carry CSC's members beside dairi's code.
    replayed = problem(sign_hash(client, yamada, sad, batch), 409, "SAD_USED")
    assert replayed["error"] == "invalid_request" and "SAD_USED" in replayed["error_description"]
    tags = [tag for tag, _ in audit_codes(app)]
    assert tags.count("signature:csc:requested") == 1 and tags.count("signature:sad:issued") == 1
    # One event for the call names every hash signed, in order (the chain verified above).
    assert created_events(app) == [
        {
            "format": "raw-hash",
            "credential_id": yamada.credential_id,
            "mandate_id": mandate["id"],
            "count": 3,
            "hashes_sha256": [h.hex() for h in batch],
            "sign_algorithm": ECDSA_SHA256,
            "key_id": yamada.employee.credential.key_ref.key_id,
            "key_version": yamada.employee.credential.key_ref.version,
        }
    ]
    # An RSA credential of 山田's with its own mandate: PKCS#1 v1.5 over each hash.
    rsa = rsa_signer(client, hsm, yamada, a)
    root_grant(client, a, rsa.employee)
    read = post(client, "credentials/info", rsa, {"credentialID": rsa.credential_id})
    assert read.get_json()["key"]["algo"] == [RSA_SHA256] and read.get_json()["key"]["len"] == 2048
    sad = sad_for(client, rsa, a, batch[:2])
    problem(sign_hash(client, rsa, sad, batch[:2]), 422, "CSC_SIGN_ALGORITHM_UNSUPPORTED")
    sad = sad_for(client, rsa, a, batch[:2])
    signed = sign_hash(client, rsa, sad, batch[:2], signAlgo=RSA_SHA256)
    assert signed.status_code == 200, signed.get_json()
    key = x509.load_der_x509_certificate(rsa.employee.certificate).public_key()
    assert isinstance(key, rsa_keys.RSAPublicKey)
    for digest, signature in zip(batch, signed.get_json()["signatures"], strict=False):
        key.verify(
            base64.b64decode(signature), digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
        )
    # The OpenAPI document names dairi's members of the CSC requests.
    spec = client.get("/openapi.json").get_json()
    authorize = spec["paths"]["/csc/v2/credentials/authorize"]["post"]
    assert "dairi_to_sign" in json.dumps(spec["components"]) and "authData" in json.dumps(spec)
    assert authorize and "dairi_purpose" in json.dumps(spec["components"]["schemas"])
    assert ("signature:csc:refused", "SAD_USED") in audit_codes(app)
    unauthenticated = client.post("/csc/v2/credentials/list", json={})
    assert unauthenticated.status_code == 401
    assert unauthenticated.get_json()["error"] == "invalid_token"


def test_each_refusal_of_the_signing_api_holds_for_csc(client, app, pki, world):
    a, yamada, suzuki, mandate = world["a"], world["yamada"], world["suzuki"], world["mandate"]
    batch = digests("一", "二")
    # Authorisation: another person's card, another employee's credential, no covering
    # mandate (purpose outside it; an employee without one), nothing to prove yet.
    problem(
        try_sad(client, yamada, a, batch, card=suzuki.card.authentication), 403, "CARD_NOT_CALLERS"
    )
    problem(try_sad(client, yamada, a, batch, token=suzuki.token), 403, "CREDENTIAL_NOT_OWNED")
    problem(
        post(
            client,
            "credentials/info",
            yamada,
            {"credentialID": yamada.credential_id},
            token=suzuki.token,
        ),
        403,
        "CREDENTIAL_NOT_OWNED",
    )
    problem(
        try_sad(client, yamada, a, batch, dairi_purpose=purpose(a, amount=100_000_001)),
        403,
        "NO_COVERING_MANDATE",
    )
    problem(try_sad(client, suzuki, a, batch), 403, "NO_COVERING_MANDATE")
    body = authorize_body(yamada, a, digests("未発行"))
    body["authData"] = card_auth_data(yamada.card.authentication, b"{}")
    problem(post(client, "credentials/authorize", yamada, body), 409, "CSC_ACTIVATION_NOT_FOUND")
    problem(
        post(
            client,
            "credentials/authorize",
            yamada,
            authorize_body(yamada, a, batch, numSignatures=3),
        ),
        422,
        "CSC_HASHES_INVALID",
    )
    # signHash: the SAD missing, for other hashes, for more signatures than authorised,
    # expired, another employee's credential.
    problem(sign_hash(client, yamada, None, batch), 403, "SAD_MISSING")
    sad = sad_for(client, yamada, a, batch)
    problem(sign_hash(client, yamada, sad, batch, token=suzuki.token), 403, "CREDENTIAL_NOT_OWNED")
    problem(sign_hash(client, yamada, sad, digests("一", "三")), 403, "CSC_HASH_NOT_AUTHORIZED")
    problem(sign_hash(client, yamada, sad, batch), 409, "SAD_USED")  # spent by the refusal
    sad = sad_for(client, yamada, a, batch)
    problem(sign_hash(client, yamada, sad, [*batch, batch[0]]), 403, "CSC_SIGNATURE_COUNT_EXCEEDED")
    sad = sad_for(client, yamada, a, batch)
    move_clock(app, timedelta(minutes=5, seconds=1))
    problem(sign_hash(client, yamada, sad, batch), 410, "SAD_EXPIRED")
    move_clock(app, timedelta(0))
    # A signing session's SAD is not a CSC SAD (and names documents, not these hashes).
    session = opened(client, yamada, a, [bid_pdf()])
    problem(
        sign_hash(client, yamada, authorized(client, yamada, session), batch), 403, "SAD_INVALID"
    )
    # Nor is a CSC SAD a session's: the sessions' signing step finds no such documents.
    sad = sad_for(client, yamada, a, batch)
    with app.extensions["dairi"].session_factory() as db:
        row_id = db.scalars(
            select(SigningSession.id)
            .where(SigningSession.format == "csc-hash")
            .order_by(SigningSession.issued_at.desc())
        ).first()
    problem(try_sign(client, yamada, row_id, sad), 403, "SAD_INVALID")
    # A subset of the authorised hashes is signed.
    sad = sad_for(client, yamada, a, batch)
    assert len(sign_hash(client, yamada, sad, batch[:1]).get_json()["signatures"]) == 1
    # The mandate revoked between authorisation and signHash: no signature.
    sad = sad_for(client, yamada, a, batch)
    rep = login(client, a.representative)
    revoked = client.post(
        f"/api/v1/mandates/{mandate['id']}/revocation", json={}, headers=bearer(rep)
    )
    assert revoked.status_code == 200, revoked.get_json()
    problem(sign_hash(client, yamada, sad, batch), 403, "MANDATE_REVOKED")
    problem(try_sad(client, yamada, a, batch), 403, "NO_COVERING_MANDATE")
    refused = {code for tag, code in audit_codes(app) if tag == "signature:csc:refused"}
    assert {
        "CARD_NOT_CALLERS",
        "CREDENTIAL_NOT_OWNED",
        "NO_COVERING_MANDATE",
        "CSC_ACTIVATION_NOT_FOUND",
        "SAD_MISSING",
        "CSC_HASH_NOT_AUTHORIZED",
        "CSC_SIGNATURE_COUNT_EXCEEDED",
        "SAD_EXPIRED",
        "MANDATE_REVOKED",
    } <= refused
    assert [tag for tag, _ in audit_codes(app)].count("signature:csc:created") == 1


def test_a_suspended_credential_signs_no_hash(client, app, world):
    a, yamada = world["a"], world["yamada"]
    batch = digests("停止")
    sad = sad_for(client, yamada, a, batch)
    with app.extensions["dairi"].session_factory() as db:
        db.get(Credential, yamada.credential_id).status = "suspended"
        db.commit()
    problem(sign_hash(client, yamada, sad, batch), 409, "CREDENTIAL_NOT_ACTIVE")
    assert created_events(app) == []


def test_multisign_is_a_setting_reported_in_credentials_info(client, app, world):
    a, yamada = world["a"], world["yamada"]
    context = app.extensions["dairi"]
    settings = context.settings
    context.settings = settings.replace(csc_multisign=2)
    try:
        read = post(client, "credentials/info", yamada, {"credentialID": yamada.credential_id})
        assert read.get_json()["multisign"] == 2
        three = digests("一", "二", "三")
        body = authorize_body(yamada, a, three)
        problem(post(client, "credentials/authorize", yamada, body), 422, "CSC_HASHES_INVALID")
        assert "dairi_to_sign" in try_sad_first(client, yamada, a, three[:2])
    finally:
        context.settings = settings


def test_an_hsm_failure_after_the_commit_answers_no_signature_and_says_so(
    client, app, world, monkeypatch
):
    """The HSM signs while the spent SAD and the batch's event are committed: if it then
    fails, nothing is answered (503), the SAD stays spent and the log says the batch
    failed."""
    a, yamada = world["a"], world["yamada"]
    batch = digests("停電")
    sad = sad_for(client, yamada, a, batch)

    def outage(*args, **kwargs):
        raise HsmUnavailable("the token went away")

    monkeypatch.setattr(app.extensions["dairi"].hsm, "sign_digests", outage)
    failed = problem(sign_hash(client, yamada, sad, batch), 503, "HSM_UNAVAILABLE")
    assert "signatures" not in failed
    monkeypatch.undo()
    problem(sign_hash(client, yamada, sad, batch), 409, "SAD_USED")
    tags = [tag for tag, _ in audit_codes(app)]
    assert tags.count("signature:csc:created") == 1
    assert tags.index("signature:csc:failed") > tags.index("signature:csc:created")
    assert ("signature:csc:failed", "HSM_UNAVAILABLE") in audit_codes(app)


def test_a_failed_commit_answers_no_signature_and_leaves_the_sad_unspent(
    client, app, world, monkeypatch
):
    a, yamada = world["a"], world["yamada"]
    batch = digests("書けない")
    sad = sad_for(client, yamada, a, batch)

    def read_only(*args, **kwargs):
        raise DatabaseUnavailable("the database is read-only")

    monkeypatch.setattr(CscService, "_record_batch", read_only)
    failed = problem(sign_hash(client, yamada, sad, batch), 503, "DATABASE_UNAVAILABLE")
    assert "signatures" not in failed
    monkeypatch.undo()
    signed = sign_hash(client, yamada, sad, batch)
    assert signed.status_code == 200, signed.get_json()
    assert [d["hashes_sha256"] for d in created_events(app)] == [[batch[0].hex()]]


class CardAuthorization(CSCAuthorizationManager):
    """pyHanko's authorisation hook, answered through dairi's two-step authorize: ask
    for ``dairi_to_sign`` for the hashes, have the JPKI card sign it, get the SAD."""

    def __init__(self, info, credential, http, card, signing_purpose: dict) -> None:
        super().__init__(info, credential)
        self.http, self.card, self.signing_purpose = http, card, signing_purpose

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        url = self.csc_session_info.endpoint_url("credentials/authorize")
        body = {
            "credentialID": self.csc_session_info.credential_id,
            "numSignatures": len(hash_b64s),
            "hash": hash_b64s,
            "dairi_purpose": self.signing_purpose,
        }
        async with self.http.post(url, headers=self.auth_headers, json=body) as response:
            assert response.status == 200, await response.text()
            to_sign = base64.b64decode((await response.json())["dairi_to_sign"])
        body["authData"] = card_auth_data(self.card, to_sign)
        async with self.http.post(url, headers=self.auth_headers, json=body) as response:
            assert response.status == 200, await response.text()
            return CSCAuthorizationInfo(sad=(await response.json())["SAD"])


@pytest.fixture
def served(app):
    """The test's app served over HTTP in this process (werkzeug, a thread): pyHanko's
    CSCSigner speaks aiohttp, which the Flask test client cannot stand in for."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_pyhanko_csc_signer_signs_a_pdf_at_b_lt_through_dairi(app, world, served, pki, trust_roots):
    a, yamada = world["a"], world["yamada"]
    roots = [asn1_x509.Certificate.load(r) for r in trust_roots]

    async def sign() -> bytes:
        async with aiohttp.ClientSession() as http:
            info = CSCServiceSessionInfo(served, yamada.credential_id, oauth_token=yamada.token)
            credential = await fetch_certs_in_csc_credential(http, info)
            assert credential.hash_pinning_required  # SCAL 2
            auth = CardAuthorization(info, credential, http, yamada.card.authentication, purpose(a))
            meta = PdfSignatureMetadata(
                field_name="Signature1",
                subfilter=SigSeedSubFilter.PADES,
                embed_validation_info=True,
                validation_context=ValidationContext(
                    trust_roots=roots,
                    allow_fetching=True,
                    fetcher_backend=TransportFetcherBackend(pki.serve_url),
                ),
            )
            signer = PdfSigner(
                meta, CSCSigner(http, auth), timestamper=InProcessTimeStamper(pki.tsa)
            )
            out = await signer.async_sign_pdf(IncrementalPdfFileWriter(BytesIO(bid_pdf())))
            return out.getvalue()

    pdf = asyncio.run(sign())
    reader = PdfFileReader(BytesIO(pdf))
    (sig,) = reader.embedded_signatures
    dss = DocumentSecurityStore.read_dss(reader)
    # Revocation required and no fetching: only what the document carries can satisfy it.
    context = dss.as_validation_context(
        {"trust_roots": roots, "allow_fetching": False, "revocation_mode": "hard-fail"}
    )
    status = validate_pdf_signature(sig, context)
    assert status.bottom_line and status.timestamp_validity.trusted, status.pretty_print_details()
    assert status.signing_cert.sha256 == bytes.fromhex(yamada.employee.sha256)
    assert "signature:csc:created" in [tag for tag, _ in audit_codes(app)]


def test_a_revoked_authentication_certificate_gets_no_sad(client, app, pki, world):
    a, yamada = world["a"], world["yamada"]
    pki.ca_for_slug("jpki-auth").revoke(
        yamada.card.authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    move_clock(app, timedelta(minutes=6))  # past the validator's cached good answer
    # The bearer token was earned with that card: it ends first, and no SAD comes of it.
    problem(try_sad(client, yamada, a, digests("一")), 401, "TOKEN_CERTIFICATE_REVOKED")
    assert "signature:sad:issued" not in [tag for tag, _ in audit_codes(app)]


def test_the_hsm_signs_a_batch_of_digests_with_one_key_lookup(hsm):
    ref = hsm.generate_key(KeyAlgorithm.EC_P256)
    key = serialization.load_der_public_key(hsm.public_key_info(ref))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    batch = digests("a", "b", "c")
    signed = hsm.sign_digests(ref, batch, scheme=SignatureScheme.ECDSA)
    for digest, signature in zip(batch, signed, strict=True):
        key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    # Nothing is signed when one digest is not a SHA-256 value, or the scheme not the key's.
    with pytest.raises(UnsupportedScheme):
        hsm.sign_digests(ref, [*batch, b"short"], scheme=SignatureScheme.ECDSA)
    with pytest.raises(UnsupportedScheme):
        hsm.sign_digests(ref, batch, scheme=SignatureScheme.RSA_PKCS1V15)
    hsm.destroy_key(ref)


def test_a_hash_is_time_stamped_by_the_service_tsa(client, world):
    yamada = world["yamada"]
    (digest,) = digests("入札書")
    response = post(client, "signatures/timestamp", yamada, {"hash": b64(digest)})
    assert response.status_code == 200, response.get_json()
    token = cms.ContentInfo.load(base64.b64decode(response.get_json()["timestamp"]))
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    problem(
        post(client, "signatures/timestamp", yamada, {"hash": b64(b"short")}),
        422,
        "CSC_HASH_ALGORITHM_UNSUPPORTED",
    )
    assert "signatures/timestamp" in client.post("/csc/v2/info").get_json()["methods"]
