"""The service layer: development PKI over HTTP, credentials, signature records, CLI."""

from __future__ import annotations

from io import BytesIO

import pytest
from asn1crypto import pem, tsp
from asn1crypto import x509 as asn1_x509
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import func, select

from app.audit_trail.log import AuditLog
from app.cli.main import main
from app.context import ServiceContext
from app.credentials.models import Credential, CredentialStatus
from app.credentials.service import CredentialError, CredentialOwner, CredentialService
from app.database import read_only_transaction
from app.signatures.models import SignatureRecord
from app.signatures.service import SignatureService
from hsm import KeyAlgorithm
from signing import DocumentNotPdf, PadesLevel, PadesSpec


@pytest.fixture
def context(app, pki):
    return app.extensions["dairi"]


@pytest.fixture
def session(context: ServiceContext):
    with context.session_factory() as s:
        yield s


@pytest.fixture
def owner(client, pki) -> CredentialOwner:
    """An employee enrolled through the API: whom a credential is issued to."""
    from helpers_auth import enrolled_employee, new_corporation

    corp = new_corporation(pki, name="株式会社大理建設")
    _, person_id, _ = enrolled_employee(client, pki, corp, "田中\u3000一郎")
    return CredentialOwner(person_id, corp.corporate_number)


# --- /pki over HTTP ----------------------------------------------------------


def test_crl_and_ca_certificate_are_served(client, pki):
    response = client.get("/pki/crl/jpki-sign.crl")
    assert response.status_code == 200
    assert response.content_type == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.data)
    assert crl.issuer == pki.cas["jpki-sign"].certificate.subject
    cert = client.get("/pki/ca/registrar.cer")
    assert x509.load_der_x509_certificate(cert.data) == pki.cas["registrar"].certificate


def test_ocsp_and_tsa_answer_over_http(client, pki):
    ca = pki.cas["service-root"].certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(pki.tsa_certificate, ca, hashes.SHA1())
    response = client.post(
        "/pki/ocsp/service-root",
        data=request.build().public_bytes(serialization.Encoding.DER),
        content_type="application/ocsp-request",
    )
    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.data).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    query = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x01" * 32,
            },
            "cert_req": True,
        }
    )
    reply = client.post("/pki/tsa", data=query.dump(), content_type="application/timestamp-query")
    assert tsp.TimeStampResp.load(reply.data)["status"]["status"].native == "granted"


def test_unknown_pki_paths_are_problem_json(client, pki):
    response = client.get("/pki/crl/nobody.crl")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.json["code"] == "NOT_FOUND"
    assert client.post("/pki/ocsp/jpki-auth", data=b"x" * 70_000).json["code"] == (
        "PAYLOAD_TOO_LARGE"
    )


# --- credentials -------------------------------------------------------------


def test_issue_creates_an_active_credential_with_its_certificate_on_the_token(
    context, session, hsm, owner
):
    service = CredentialService(session, hsm, context.dev_pki)
    created = service.issue("田中 一郎", KeyAlgorithm.EC_P256, owner)
    assert created.status == CredentialStatus.ACTIVE
    # The certificate names the person as enrolled, and the employer.
    assert "CN=田中\u3000一郎" in created.subject and "O=株式会社大理建設" in created.subject
    assert (created.person_id, created.corporate_number) == (
        owner.person_id,
        owner.corporate_number,
    )
    signing = service.signing_credential(service.get("田中 一郎"))
    assert signing.key_ref in hsm.list_keys()
    assert len(signing.chain_der) == 1
    with pytest.raises(CredentialError) as info:
        service.issue("田中 一郎", KeyAlgorithm.EC_P256, owner)
    assert info.value.code == "CREDENTIAL_NAME_TAKEN"


def test_a_failed_issue_leaves_no_key_and_no_row(context, session, hsm, monkeypatch, owner):
    keys_before = set(hsm.list_keys())
    pki = context.dev_pki

    def broken(*args, **kwargs):
        raise RuntimeError("CA offline")

    monkeypatch.setattr(pki, "issue_employee_certificate", broken)
    with pytest.raises(RuntimeError):
        CredentialService(session, hsm, pki).issue("失敗 例", KeyAlgorithm.RSA_2048, owner)
    assert set(hsm.list_keys()) == keys_before
    assert session.scalar(select(func.count()).select_from(Credential)) == 0


def test_external_ca_path_csr_then_import(context, session, hsm, pki, owner):
    service = CredentialService(session, hsm, None)
    subject = asn1_x509.Name.build({"country_name": "JP", "common_name": "外部 太郎"})
    pending, csr = service.request("外部 太郎", KeyAlgorithm.RSA_2048, subject, owner)
    assert pending.status == CredentialStatus.PENDING
    session.commit()
    with pytest.raises(CredentialError) as info:
        service.signing_credential(pending)
    assert info.value.code == "CREDENTIAL_NOT_ACTIVE"

    # A certificate for some other key is refused.
    other = pki.certify_csr(
        CredentialService(session, hsm, None).request(
            "別人", KeyAlgorithm.RSA_2048, subject, owner
        )[1]
    )
    with pytest.raises(CredentialError) as info:
        service.import_certificate(
            "外部 太郎", other.certificate.public_bytes(serialization.Encoding.DER), []
        )
    assert info.value.code == "CERTIFICATE_KEY_MISMATCH"

    issued = pki.certify_csr(csr)
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    chain = [c.public_bytes(serialization.Encoding.DER) for c in issued.chain]
    active = service.import_certificate(pending.id, der, chain)
    assert active.status == CredentialStatus.ACTIVE
    assert service.signing_credential(active).chain_der == tuple(chain)
    # Flushed, not committed: the caller's unit of work (with its audit event) commits.
    with context.session_factory() as other:
        read_only_transaction(other)  # a SQLite reader: the writer's lock is still held
        assert other.get(Credential, pending.id).status == CredentialStatus.PENDING


def test_unknown_credential(context, session, hsm):
    with pytest.raises(CredentialError) as info:
        CredentialService(session, hsm, context.dev_pki).get("nobody")
    assert info.value.code == "CREDENTIAL_UNKNOWN"


def test_a_signature_is_recorded_with_its_key_reference(context, session, hsm, bid, owner):
    CredentialService(session, hsm, context.dev_pki).issue(
        "記録 花子", KeyAlgorithm.RSA_2048, owner
    )
    service = SignatureService(session, context)
    result, record = service.sign_pdf("記録 花子", bid, PadesSpec(level=PadesLevel.B_T))
    stored = session.get(SignatureRecord, record.id)
    assert stored.level == "B-T"
    assert stored.key_ref == service._credentials.get("記録 花子").key_ref
    assert stored.signed_document_sha256 == result.signed_document_sha256
    assert PdfFileReader(BytesIO(result.pdf)).embedded_signatures

    with pytest.raises(DocumentNotPdf):
        service.sign_pdf("記録 花子", b"hello", PadesSpec())
    assert session.scalar(select(func.count()).select_from(SignatureRecord)) == 1


# --- command line --------------------------------------------------------------


def operator_events(context: ServiceContext) -> list[tuple[str, str, str]]:
    """(tag, actor, subject) of each audit event, after verifying the chain."""
    with context.session_factory() as session:
        log = AuditLog(session)
        log.verify()
        return [(r.tag, r.actor, r.subject or "") for r in log.events()]


def test_cli_issues_signs_and_reports_coded_errors(cli_env, context, tmp_path, bid, owner):
    runner = CliRunner()
    person = ["--person", owner.person_id, "--corporation", owner.corporate_number]
    issued = runner.invoke(main, ["credential", "issue", "--name", "cli-user", *person])
    assert issued.exit_code == 0, issued.output
    # The operator's key issuance is a state change: audited, in the same transaction.
    assert ("credential:key:issued", "operator", issued.output.split()[0]) in operator_events(
        context
    )
    assert "active" in issued.output and "CN=田中\u3000一郎" in issued.output
    listed = runner.invoke(main, ["credential", "list"])
    assert f"{owner.person_id}@{owner.corporate_number}" in listed.output
    # Only an enrolled employee of that corporation gets a credential.
    stranger = runner.invoke(
        main,
        [
            "credential",
            "issue",
            "--name",
            "cli-other",
            "--person",
            owner.person_id,
            "--corporation",
            "4011001098993",
        ],
    )
    assert stranger.exit_code == 2 and "error PERSON_NOT_EMPLOYEE" in stranger.output
    source = tmp_path / "bid.pdf"
    source.write_bytes(bid)
    signed = runner.invoke(
        main,
        [
            "sign-pdf",
            "--credential",
            "cli-user",
            "--level",
            "B-LT",
            str(source),
            str(tmp_path / "signed.pdf"),
        ],
    )
    assert signed.exit_code == 0, signed.output
    assert PdfFileReader(BytesIO((tmp_path / "signed.pdf").read_bytes())).embedded_signatures

    missing = runner.invoke(
        main, ["sign-pdf", "--credential", "nobody", str(source), str(tmp_path / "x.pdf")]
    )
    assert missing.exit_code == 2
    assert "error CREDENTIAL_UNKNOWN" in missing.output
    assert not (tmp_path / "x.pdf").exists()


def test_cli_external_ca_round_trip(cli_env, context, tmp_path, pki, owner):
    runner = CliRunner()
    csr_file = tmp_path / "req.pem"
    requested = runner.invoke(
        main,
        [
            "credential",
            "request",
            "--name",
            "ext-user",
            "--person",
            owner.person_id,
            "--corporation",
            owner.corporate_number,
            "--out",
            str(csr_file),
        ],
    )
    assert requested.exit_code == 0, requested.output
    pending_id = requested.output.split()[0]
    assert ("credential:key:requested", "operator", pending_id) in operator_events(context)
    (_, _, csr_der) = pem.unarmor(csr_file.read_bytes())
    issued = pki.certify_csr(csr_der)
    cert_file = tmp_path / "cert.pem"
    cert_file.write_bytes(
        issued.certificate.public_bytes(serialization.Encoding.PEM)
        + issued.chain[0].public_bytes(serialization.Encoding.PEM)
    )
    imported = runner.invoke(
        main, ["credential", "import", "--name", "ext-user", "--cert", str(cert_file)]
    )
    assert imported.exit_code == 0, imported.output
    assert "active" in imported.output
    assert ("credential:certificate:imported", "operator", pending_id) in operator_events(context)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate")
    bad = runner.invoke(
        main, ["credential", "import", "--name", "ext-user", "--cert", str(garbage)]
    )
    assert bad.exit_code == 2 and "CERTIFICATE_INVALID" in bad.output
